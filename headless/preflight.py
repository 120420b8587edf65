"""The pre-flight of a headless run: what a node would refuse in its data is refused before anything expensive runs.

How many works reach a node is known only once its upstream has run, so a Latent Walk given one keyframe used to
refuse after the training that came before it. So first the cheap nodes run (CHEAP: the loaders; the run keeps
their results, so nothing is read twice), then every node, in execution order, is asked its outputs' batch sizes
from its inputs' (``batch_sizes``, nodes/base.py) and raises there what it would raise later on that data.

Inside ComfyUI there is no such hook: VALIDATE_INPUTS sees linked inputs as None, and the execution order is
ComfyUI's, so there a node refuses when it runs (README, Troubleshooting).
"""
import torch

from ..models.errors import AtelierError
from .workflow import WorkflowError, is_link, node_label


def batch_of(value):
    """The batch size of an IMAGE, MASK or LATENT; None for anything else."""
    if isinstance(value, dict):
        value = value.get("samples")
    return value.shape[0] if isinstance(value, torch.Tensor) and value.ndim else None


def preflight(prompt, order, classes, results, execute):
    """Run the cheap nodes in ``order`` (``execute(node_id)`` puts their outputs in ``results``) and check the
    batch sizes every other node will get; a refusal is a WorkflowError naming the node."""
    batches = {}

    def batch(link):
        sizes = batches.get(str(link[0]), ())
        return sizes[link[1]] if link[1] < len(sizes) else None

    for node_id in order:
        node, cls = prompt[node_id], classes[prompt[node_id]["class_type"]]
        if getattr(cls, "CHEAP", False) and all(str(v[0]) in results for v in node["inputs"].values() if is_link(v)):
            execute(node_id)
            batches[node_id] = [batch_of(out) for out in results[node_id]]
        elif hasattr(cls, "batch_sizes"):
            inputs = {name: batch(v) if is_link(v) else v for name, v in node["inputs"].items()}
            try:
                batches[node_id] = list(cls.batch_sizes(**inputs) or ())
            except AtelierError as e:
                raise WorkflowError(f"{node_label(node_id, node)}: {e}") from None
