"""Thin ComfyUI node classes (V1 API) over the pure-torch core in ../models."""
from .explore_nodes import AtelierLatentDirections, AtelierLatentEdit, AtelierVisualizeLatent
from .image_nodes import AtelierImageGrid, AtelierLoadImageFolder
from .latent_nodes import (AtelierDecode, AtelierEncode, AtelierLatentCollage, AtelierLatentMix, AtelierLatentStyleMix,
                           AtelierLatentWalk, AtelierSampleLatent)
from .model_nodes import AtelierLoadAutoencoder, AtelierNewAutoencoder, AtelierSaveAutoencoder
from .restore_node import AtelierRestore
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
    "AtelierEncode": "Encode with Autoencoder (Atelier)",
    "AtelierDecode": "Decode with Autoencoder (Atelier)",
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
