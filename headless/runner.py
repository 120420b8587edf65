"""Executes an API-format prompt with the pack's nodes and the core stand-ins, as ComfyUI would:
only what output nodes need, in dependency order, validated first, inside torch.inference_mode()."""
import contextlib
import inspect
import logging
import math
import os
import sys
import time

import torch

from ..models import interrupt
from ..nodes import NODE_CLASS_MAPPINGS, bridge
from ..nodes.bridge import HeadlessProgressBar
from .core_nodes import CORE_NODES
from .preflight import preflight
from .workflow import MAX_NODES, WorkflowError, is_link, is_widget, node_label

try:   # a dev requirement: bars that log lines do not run into; without it, the plain bar below
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm
except ImportError:
    tqdm = None

log = logging.getLogger("autoencoder_atelier.runner")
NODES = {**NODE_CLASS_MAPPINGS, **CORE_NODES}


def input_types_of(class_type):
    cls = NODES.get(class_type)
    return cls.INPUT_TYPES() if cls is not None else None


def check_prompt(prompt):
    """The shape of an API prompt ({id: {"class_type": str, "inputs": {name: value}}}), as clear errors."""
    if not isinstance(prompt, dict) or not prompt:
        raise WorkflowError("the prompt is not a map of node ids to nodes (is this a workflow file?)")
    if len(prompt) > MAX_NODES:
        raise WorkflowError(f"the prompt has {len(prompt)} nodes; at most {MAX_NODES} run here")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id}: expected {{'class_type': ..., 'inputs': {{...}}}}, got "
                                f"{str(node)[:80]}")


def _check_value(where, name, spec, value):
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(kind, list):
        if value not in kind and str(value) not in map(str, kind) and not opts.get("image_upload"):
            shown = ", ".join(map(str, kind[:8])) + (" ..." if len(kind) > 8 else "")
            raise WorkflowError(f"{where}: {name}={value!r} is not one of: {shown}")
        return value
    if isinstance(value, (list, dict)):
        raise WorkflowError(f"{where}: {name} is a widget; it takes a single value, not {str(value)[:40]}")
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WorkflowError(f"{where}: {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise WorkflowError(f"{where}: {name} must be a finite number, got {value!r}")
        if kind == "INT" and float(value) != int(value):
            raise WorkflowError(f"{where}: {name} must be a whole number, got {value!r}")
        lo, hi = opts.get("min"), opts.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise WorkflowError(f"{where}: {name}={value} is outside {lo}..{hi}")
        return int(value) if kind == "INT" else float(value)
    if kind == "BOOLEAN" and not isinstance(value, bool):
        raise WorkflowError(f"{where}: {name} must be true or false, got {value!r}")
    if kind == "STRING" and not isinstance(value, str):
        raise WorkflowError(f"{where}: {name} must be text, got {value!r}")
    return value


def validated_by_node(cls):
    """Inputs the node's VALIDATE_INPUTS names: ComfyUI skips their dropdown check and leaves them to it."""
    fn = getattr(cls, "VALIDATE_INPUTS", None)
    return set(inspect.getfullargspec(fn).args) if fn is not None else set()


def plan(prompt):
    """Validated execution order of the nodes that output nodes depend on."""
    check_prompt(prompt)
    for node_id, node in prompt.items():
        if node["class_type"] not in NODES:
            raise WorkflowError(f"{node_label(node_id, node)} is not available headless: only the Autoencoder "
                                f"Atelier nodes and ComfyUI's {', '.join(CORE_NODES)} run here. Run this "
                                "workflow in ComfyUI, or remove that node")
    outputs = [i for i, n in prompt.items() if getattr(NODES[n["class_type"]], "OUTPUT_NODE", False)]
    if not outputs:
        raise WorkflowError("the workflow has no output node (Save Image, Preview Image, Save Autoencoder)")
    order, state = [], {}
    for root in sorted(outputs, key=lambda i: (len(i), i)):
        # Depth first with an explicit stack: a chain of thousands of nodes needs no recursion.
        stack = [(root, None)]
        while stack:
            node_id, parent = stack.pop()
            if node_id is None:  # all inputs of ``parent`` are done
                state[parent] = "done"
                order.append(parent)
                continue
            if state.get(node_id) == "done":
                continue
            if state.get(node_id) == "active":
                raise WorkflowError(f"the workflow has a cycle through node {node_id}")
            if node_id not in prompt:
                raise WorkflowError(f"{node_label(parent, prompt[parent])} links to node {node_id}, which is not in "
                                    "the workflow")
            state[node_id] = "active"
            stack.append((None, node_id))
            for name, value in prompt[node_id]["inputs"].items():
                if is_link(value):
                    _check_link(prompt, node_id, name, value)
                    stack.append((str(value[0]), node_id))
    for node_id in order:
        node, cls = prompt[node_id], NODES[prompt[node_id]["class_type"]]
        spec = cls.INPUT_TYPES()
        where = node_label(node_id, node)
        for name in spec.get("required", {}):
            if name not in node["inputs"]:
                raise WorkflowError(f"{where}: required input '{name}' is not connected or set")
        own = validated_by_node(cls)
        for section in ("required", "optional"):
            for name, s in spec.get(section, {}).items():
                value = node["inputs"].get(name)
                if value is not None and is_widget(s) and not is_link(value):
                    # As ComfyUI: an input the node's VALIDATE_INPUTS takes is checked there, not by the dropdown
                    # (typed folder names, which headless runs accept anywhere).
                    node["inputs"][name] = value if name in own else _check_value(where, name, s, value)
        _validate_inputs(where, cls, node["inputs"])
    return order


def _validate_inputs(where, cls, inputs):
    """A node's VALIDATE_INPUTS, called as ComfyUI 0.3.64 calls it (execution.validate_inputs): with the inputs
    its signature names (all of them for **kwargs), a linked one as None since nothing has run yet; anything
    but True refuses the prompt before any node runs."""
    check = getattr(cls, "VALIDATE_INPUTS", None)
    if check is None:
        return
    spec = inspect.getfullargspec(check)
    result = check(**{name: None if is_link(value) else value for name, value in inputs.items()
                      if name in spec.args or spec.varkw})
    if result is not True:
        raise WorkflowError(f"{where}: {result if isinstance(result, str) else 'its inputs were refused'}")


def _check_link(prompt, node_id, name, link):
    source = prompt.get(str(link[0]))
    if source is None:
        return  # reported as a missing node by the walk
    outputs = getattr(NODES.get(source["class_type"]), "RETURN_TYPES", ())
    if not 0 <= link[1] < len(outputs):
        raise WorkflowError(f"{node_label(node_id, prompt[node_id])}: input '{name}' links to output {link[1]} of "
                            f"{node_label(link[0], source)}, which has {len(outputs)} outputs")


class TextProgress:
    """A one-line progress bar on stderr (or a line every 10% when not a terminal)."""

    def __init__(self, label):
        self.label, self.last, self.tty = label, -1, sys.stderr.isatty()

    def __call__(self, value, total, preview=None):
        pct = int(100 * value / max(1, total))
        if self.tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {value}/{total}")
            if value >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif pct // 10 != self.last // 10 or value >= total:
            log.info("%s: %d/%d (%d%%)", self.label, value, total, pct)
        self.last = pct

    def close(self):
        if self.tty and 0 <= self.last < 100:   # a node that stopped half-way: end its line
            sys.stderr.write("\n")


class TqdmProgress:
    """tqdm's bar, redrawn below each log line (logging_redirect_tqdm in run())."""

    def __init__(self, label):
        self.label, self.bar = label, None

    def __call__(self, value, total, preview=None):
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, file=sys.stderr, dynamic_ncols=True, leave=True)
        self.bar.total = total   # a node's later phase may count in other units (tiles of a decode after an encode)
        self.bar.update(value - self.bar.n)
        if value >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _progress(enabled):
    """(bar factory, context for the run): tqdm on a terminal where installed, else the plain bar."""
    if not enabled:
        return (lambda label: None), contextlib.nullcontext()
    if tqdm is not None and sys.stderr.isatty():
        return TqdmProgress, logging_redirect_tqdm()
    return TextProgress, contextlib.nullcontext()


def announce_models(prompt, order):
    """Say which model file each loader uses, and name newer ones: a workflow keeps the model it was saved
    with (the demo's, in the examples), and running it on another without noticing is easy."""
    names = bridge.list_models()
    folder = bridge.model_dirs()[0]
    newest = max(names, key=lambda n: os.path.getmtime(os.path.join(folder, n)), default=None)
    for node_id in order:
        node = prompt[node_id]
        if node["class_type"] == "AtelierLoadAutoencoder" and isinstance(node["inputs"].get("ae_name"), str):
            name = node["inputs"]["ae_name"]
            hint = (f"; the newest model is {newest}: pick it with --set {node_id}.ae_name={newest}"
                    if newest and newest != name else "")
            log.info("%s uses model %s%s", node_label(node_id, node), name, hint)


def run(prompt, progress=True):
    """Execute ``prompt``; returns {node_id: ui dict} for output nodes."""
    check_prompt(prompt)
    prompt = {str(k): {**v, "inputs": dict(v.get("inputs", {}))} for k, v in prompt.items()}
    order = plan(prompt)
    announce_models(prompt, order)
    results, ui = {}, {}
    bar, redirect = _progress(progress)

    def execute(node_id):
        node = prompt[node_id]
        cls = NODES[node["class_type"]]
        kwargs = {k: results[str(v[0])][v[1]] if is_link(v) else v for k, v in node["inputs"].items()}
        label = node_label(node_id, node)
        interrupt.check()   # before every node, as ComfyUI does (bench/cancel_gaps.py sees what a server would)
        HeadlessProgressBar.hook = hook = bar(label)
        t = time.perf_counter()
        try:
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        finally:
            HeadlessProgressBar.hook = None
            if hook is not None:
                hook.close()
        if isinstance(out, dict):
            if "ui" in out:
                ui[node_id] = out["ui"]
            out = out.get("result", ())
        results[node_id] = tuple(out or ())
        log.info("%s done in %.1fs", label, time.perf_counter() - t)

    with torch.inference_mode(), redirect:
        preflight(prompt, order, NODES, results, execute)
        for node_id in order:
            if node_id not in results:   # the pre-flight ran the cheap ones
                execute(node_id)
    return ui
