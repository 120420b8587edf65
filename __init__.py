"""Autoencoder Atelier: train small autoencoders on your own artworks inside ComfyUI.

ComfyUI imports this file from custom_nodes/; everything inside the pack is imported
relatively, because ComfyUI has top-level modules of its own called ``nodes``.
"""
from .models import __version__
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.bridge import register_model_folder

register_model_folder()

WEB_DIRECTORY = "./web"  # shows saved paths and model cards on the nodes

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]
