"""Thin ComfyUI node classes (V1 API) over the pure-torch core in ../models.

A node is an ``AtelierNode`` subclass (base.py: identity, category, error wording) listed in ``NODES``;
ComfyUI's mappings and the search-alias route are built from that list.
"""
from . import bridge
from .base import user_errors
from .explore_nodes import AtelierLatentDirections, AtelierLatentEdit, AtelierVisualizeLatent
from .image_nodes import AtelierImageGrid, AtelierLoadDataset, AtelierLoadImageFolder
from .latent_nodes import (AtelierDecode, AtelierEncode, AtelierLatentCollage, AtelierLatentMix, AtelierLatentStyleMix,
                           AtelierLatentWalk, AtelierSampleLatent)
from .model_nodes import AtelierLoadAutoencoder, AtelierNewAutoencoder, AtelierSaveAutoencoder, model_card
from .prior_nodes import AtelierLatentVariations, AtelierTrainLatentPrior
from .restore_node import AtelierRestore
from .train_node import AtelierTrainAutoencoder

NODES = [
    AtelierNewAutoencoder, AtelierLoadAutoencoder, AtelierSaveAutoencoder, AtelierLoadImageFolder, AtelierLoadDataset,
    AtelierTrainAutoencoder, AtelierEncode, AtelierDecode, AtelierLatentMix, AtelierLatentWalk,
    AtelierLatentStyleMix, AtelierLatentCollage, AtelierSampleLatent, AtelierLatentDirections, AtelierLatentEdit,
    AtelierVisualizeLatent, AtelierImageGrid, AtelierRestore, AtelierTrainLatentPrior, AtelierLatentVariations,
]

NODE_CLASS_MAPPINGS = {node.__name__: node for node in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {node.__name__: node.DISPLAY_NAME for node in NODES}
# Newer ComfyUI servers send a class's SEARCH_ALIASES to the frontend, whose node search matches them
# (1.27 only matches names); web/atelier.js asks this route where the server (0.3.64 and older) does not.
SEARCH_ALIASES = {node.__name__: node.SEARCH_ALIASES for node in NODES}

# For web/atelier.js: the card of the model picked in Load Autoencoder, as soon as it is picked.
bridge.add_json_route("/atelier/model_card", user_errors(
    lambda query: {"text": model_card(query.get("name", ""))}, AtelierLoadAutoencoder.error_prefix()))
bridge.add_json_route("/atelier/search_aliases", lambda query: SEARCH_ALIASES)
