"""What every node class shares: its identity (node ID = class name, display name, search words), its
category, and how bad inputs and the pack's own errors reach the artist.

A node is a subclass of ``AtelierNode`` listed in ``nodes/__init__.py``'s ``NODES``; nothing else registers it.
"""
import functools
import inspect
import math

from ..models.errors import AtelierError
from .schema import CATEGORY


def user_errors(fn, prefix):
    """``fn`` with the pack's own errors (AtelierError) turned into a ValueError that starts with ``prefix``.
    Other exceptions (bugs, ComfyUI's Cancel) pass through untouched, traceback and all."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AtelierError as e:
            message = f"{prefix}: {e}"
        # Raised outside the handler: one clear line for the artist, and the frames of the pack's error
        # (holding tensors, GPU memory after running out of it) are released.
        raise ValueError(message) from None
    return call


def works_of(images, dataset):
    """What a node that learns from the artist's works (Train Autoencoder, Train Latent Prior) reads: the
    dataset when one is connected, else the IMAGE batch."""
    works = dataset if dataset is not None else images
    if works is None:
        raise AtelierError("connect your works: images (Load Image Folder) or a dataset (Load Dataset Folder)")
    return works


def finite_floats(cls, fn):
    """``fn`` refusing a NaN or infinite FLOAT input: ComfyUI's own range check lets NaN through (every
    comparison with NaN is false), and JSON prompts can carry it."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        spec = cls.INPUT_TYPES()
        floats = {n for part in ("required", "optional") for n, s in (spec.get(part) or {}).items() if s[0] == "FLOAT"}
        for name, value in signature.bind_partial(self, *args, **kwargs).arguments.items():
            if name in floats and isinstance(value, float) and not math.isfinite(value):
                raise AtelierError(f"{name} must be a finite number, got {value}")
        return fn(self, *args, **kwargs)
    return call


class AtelierNode:
    CATEGORY = CATEGORY
    DISPLAY_NAME = ""      # the title in the node menu, "... (Atelier)"
    SEARCH_ALIASES = []    # other words an artist might type into the node search
    # The headless pre-flight (headless/preflight.py) runs CHEAP nodes before any other (loaders; the result is
    # kept for the run) and asks the others their outputs' batch sizes, so data they would refuse is refused
    # before anything expensive runs. ComfyUI ignores both.
    CHEAP = False

    @classmethod
    def batch_sizes(cls, **inputs):
        """The outputs' batch sizes from the linked inputs' (an int, or None when not known before running) and
        the widget values, raising the AtelierError the node would raise on that data; None: not known."""
        return None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "FUNCTION" in vars(cls):
            fn = finite_floats(cls, getattr(cls, cls.FUNCTION))
            setattr(cls, cls.FUNCTION, user_errors(fn, cls.error_prefix()))

    @classmethod
    def error_prefix(cls):
        """How the node's messages start: the title the artist sees on the node, so an error names it as shown."""
        return cls.DISPLAY_NAME
