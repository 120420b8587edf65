"""Autoencoder Atelier: train small autoencoders on your own artworks inside ComfyUI.

ComfyUI imports this file from custom_nodes/; everything inside the pack is imported
relatively, because ComfyUI has top-level modules of its own called ``nodes``.
"""
import sys

try:
    import torch  # noqa: F401
except ModuleNotFoundError as e:   # one line for the artist instead of a traceback from deep inside the pack
    if e.name != "torch":
        raise
    raise ModuleNotFoundError(
        f"Autoencoder Atelier needs PyTorch, and this Python ({sys.executable}) has none. From a clone, "
        "'python tools/dev.py demo' installs a CPU build into ./.venv; or install one into this Python: "
        "'python -m pip install torch --index-url https://download.pytorch.org/whl/cpu' (or the CUDA "
        "command from pytorch.org)", name="torch") from None

from .models import __version__  # noqa: E402
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from .nodes.bridge import register_model_folder  # noqa: E402

register_model_folder()

WEB_DIRECTORY = "./web"  # shows saved paths and model cards on the nodes

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]
