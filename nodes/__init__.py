"""Thin ComfyUI node classes (V1 API) over the pure-torch core in ../models."""
from . import bridge
from .explore_nodes import AtelierLatentDirections, AtelierLatentEdit, AtelierVisualizeLatent
from .image_nodes import AtelierImageGrid, AtelierLoadImageFolder
from .latent_nodes import (AtelierDecode, AtelierEncode, AtelierLatentCollage, AtelierLatentMix, AtelierLatentStyleMix,
                           AtelierLatentWalk, AtelierSampleLatent)
from .model_nodes import AtelierLoadAutoencoder, AtelierNewAutoencoder, AtelierSaveAutoencoder, model_card
from .restore_node import AtelierRestore
from .schema import refuse_non_finite
from .train_node import AtelierTrainAutoencoder

NODE_CLASS_MAPPINGS = {
    "AtelierNewAutoencoder": AtelierNewAutoencoder,
    "AtelierLoadAutoencoder": AtelierLoadAutoencoder,
    "AtelierSaveAutoencoder": AtelierSaveAutoencoder,
    "AtelierLoadImageFolder": AtelierLoadImageFolder,
    "AtelierTrainAutoencoder": AtelierTrainAutoencoder,
    "AtelierEncode": AtelierEncode,
    "AtelierDecode": AtelierDecode,
    "AtelierLatentMix": AtelierLatentMix,
    "AtelierLatentWalk": AtelierLatentWalk,
    "AtelierLatentStyleMix": AtelierLatentStyleMix,
    "AtelierLatentCollage": AtelierLatentCollage,
    "AtelierSampleLatent": AtelierSampleLatent,
    "AtelierLatentDirections": AtelierLatentDirections,
    "AtelierLatentEdit": AtelierLatentEdit,
    "AtelierVisualizeLatent": AtelierVisualizeLatent,
    "AtelierImageGrid": AtelierImageGrid,
    "AtelierRestore": AtelierRestore,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "AtelierNewAutoencoder": "New Autoencoder (Atelier)",
    "AtelierLoadAutoencoder": "Load Autoencoder (Atelier)",
    "AtelierSaveAutoencoder": "Save Autoencoder (Atelier)",
    "AtelierLoadImageFolder": "Load Image Folder (Atelier)",
    "AtelierTrainAutoencoder": "Train Autoencoder (Atelier)",
    "AtelierEncode": "Encode to Latent with Autoencoder (Atelier)",
    "AtelierDecode": "Decode Latent with Autoencoder (Atelier)",
    "AtelierLatentMix": "Latent Mix (Atelier)",
    "AtelierLatentWalk": "Latent Walk (Atelier)",
    "AtelierLatentStyleMix": "Latent Style Mix (Atelier)",
    "AtelierLatentCollage": "Latent Collage (Atelier)",
    "AtelierSampleLatent": "Sample Latent (Atelier)",
    "AtelierLatentDirections": "Latent Directions (Atelier)",
    "AtelierLatentEdit": "Latent Edit (Atelier)",
    "AtelierVisualizeLatent": "Visualize Latent (Atelier)",
    "AtelierImageGrid": "Image Grid (Atelier)",
    "AtelierRestore": "Restore Damaged Image (Atelier)",
}

# Words an artist might type into the node search besides the display name. Newer ComfyUI servers send a
# class's SEARCH_ALIASES to the frontend, whose node search matches them (1.27 only matches names).
SEARCH_ALIASES = {
    "AtelierNewAutoencoder": ["new model", "create autoencoder", "vae", "train from scratch", "untrained"],
    "AtelierLoadAutoencoder": ["load model", "open model", "checkpoint", "model card", "vae loader"],
    "AtelierSaveAutoencoder": ["save model", "export model", "checkpoint", "safetensors"],
    "AtelierLoadImageFolder": ["training images", "training data", "train", "dataset", "load images", "batch"],
    "AtelierTrainAutoencoder": ["training", "fit", "learn", "fine-tune", "finetune", "restoration training"],
    "AtelierEncode": ["latent", "vae encode", "image to latent", "compress"],
    "AtelierDecode": ["latent", "vae decode", "latent to image", "reconstruct"],
    "AtelierLatentMix": ["mix", "blend", "interpolate", "slerp", "lerp", "combine", "latent math"],
    "AtelierLatentWalk": ["animation", "morph", "interpolate", "in-between", "tween", "frames", "loop"],
    "AtelierLatentStyleMix": ["style transfer", "adain", "colour transfer", "color transfer", "texture", "mix"],
    "AtelierLatentCollage": ["collage", "mix", "mask", "composite", "split", "combine"],
    "AtelierSampleLatent": ["random", "generate", "noise", "prior", "new images", "sample the autoencoder"],
    "AtelierLatentDirections": ["pca", "principal components", "latent space", "variance", "analysis"],
    "AtelierLatentEdit": ["direction", "slider", "attribute", "latent arithmetic"],
    "AtelierVisualizeLatent": ["latent preview", "preview latent", "pca", "channels"],
    "AtelierImageGrid": ["grid", "contact sheet", "montage", "tile", "batch to image"],
    "AtelierRestore": ["restore", "repair", "denoise", "inpaint", "fix damage", "autoencoder"],
}
for _node_id, _aliases in SEARCH_ALIASES.items():
    NODE_CLASS_MAPPINGS[_node_id].SEARCH_ALIASES = _aliases
for _node_id, _cls in NODE_CLASS_MAPPINGS.items():
    refuse_non_finite(_cls, NODE_DISPLAY_NAME_MAPPINGS[_node_id].replace(" (Atelier)", "").join(("Atelier ", "")))

# For web/atelier.js: the card of the model picked in Load Autoencoder, as soon as it is picked, and the
# search aliases for frontends that match them when the server (ComfyUI 0.3.64 and older) does not send them.
bridge.add_json_route("/atelier/model_card", lambda query: {"text": model_card(query.get("name", ""))})
bridge.add_json_route("/atelier/search_aliases", lambda query: SEARCH_ALIASES)
