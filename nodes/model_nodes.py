"""Nodes that make, load and save autoencoders."""
import os
import re

from ..models import memory, storage
from ..models.autoencoder import Autoencoder
from ..models.config import DOWNSCALES, default_config, parameter_count
from ..models.errors import AtelierError
from ..models.files import is_regular_file
from ..models.networks import ARCHITECTURES
from . import bridge
from .base import AtelierNode
from .save_paths import candidates, numbered_files, validate_prefix
from .schema import AUTOENCODER, COMBO, INT, LINK, SEED, STRING


class AtelierNewAutoencoder(AtelierNode):
    DISPLAY_NAME = "New Autoencoder (Atelier)"
    SEARCH_ALIASES = ["new model", "create autoencoder", "vae", "train from scratch", "untrained"]
    DESCRIPTION = ("Creates a fresh, untrained autoencoder. 'conv' works on images of any size and is the one to "
                   "start with; 'conv-vae' can also invent new images from random latents; 'dense' is the small "
                   "classic network for tiny fixed-size images such as 28x28 digits. Train it next.")
    RETURN_TYPES = (AUTOENCODER,)
    RETURN_NAMES = ("autoencoder",)
    OUTPUT_TOOLTIPS = ("The new, untrained autoencoder. Connect it to Train Autoencoder.",)
    FUNCTION = "create"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "architecture": COMBO(list(ARCHITECTURES), "conv: fully convolutional, any image size. "
                                  "conv-vae: the same, plus sampling new images from noise. dense: the classic "
                                  "fully connected network for small fixed-size images."),
            "latent_channels": INT(8, 1, 256, "Numbers the model keeps per latent position (for dense: in "
                                   "total). Fewer = stronger compression and blurrier, more abstract results."),
            "downscale": COMBO([str(d) for d in DOWNSCALES], "How much smaller the latent grid is than the image "
                               "(conv models). 8 means a 512x512 image becomes a 64x64 latent.", default="8"),
            "width": INT(32, 4, 512, "Base number of feature channels. Wider learns more detail but trains "
                         "slower; 32 is quick, 64 is sharper."),
            "image_size": INT(64, 4, 512, "Dense models only: the fixed image side they take (28 for MNIST). "
                              "Conv models ignore it and accept any size."),
            "seed": SEED("Seed for the initial random weights; the same seed gives the same starting model."),
        }, "optional": {
            "blocks": INT(1, 0, 8, "Residual blocks per scale (conv models). More = deeper and slower.", advanced=True),
            "color": COMBO(["rgb", "grayscale"], "Whether the model sees colour or only brightness."),
        }}

    def create(self, architecture, latent_channels, downscale, width, image_size, seed, blocks=1, color="rgb"):
        cfg = default_config(architecture, latent_channels=int(latent_channels), downscale=int(downscale),
                             width=int(width), image_size=int(image_size), blocks=int(blocks),
                             channels=1 if color == "grayscale" else 3)
        # Weights, their gradients and AdamW's two moments once it trains.
        memory.check("width", cfg["width"], lambda w: parameter_count({**cfg, "width": w}) * 4 * memory.FLOAT_BYTES,
                     lowest=4, advice="lower blocks or latent_channels")
        ae = Autoencoder.new(cfg, seed=int(seed))
        bridge.log.info("new autoencoder: %s", ae.describe().replace("\n", "; "))
        return (ae,)


def resolve_model_path(name):
    """Full path of a model file from the loader's combo value, refusing anything outside the folders."""
    # "C:name" is relative to drive C's current folder on Windows: as absolute as "/name" for our purposes.
    if not isinstance(name, str) or not name or os.path.isabs(name) or name.startswith(("/", "\\")) \
            or re.match(r"[A-Za-z]:", name) or "\0" in name \
            or ".." in re.split(r"[\\/]", name) or not name.lower().endswith(".safetensors"):
        raise AtelierError(f"{name!r} is not a model file name; pick one from the list "
                         "(files in models/autoencoders ending in .safetensors)")
    for folder in bridge.model_dirs():
        path = os.path.join(folder, name)
        if is_regular_file(path):
            return path
    raise AtelierError(f"{name!r} was not found in {', '.join(bridge.model_dirs())}; "
                     "refresh the list (press R) or check the file was saved")


def model_card(name):
    """The card of a model in the loader's list, read from the file's header (weights stay on disk)."""
    return storage.read_card(resolve_model_path(name))


class AtelierLoadAutoencoder(AtelierNode):
    DISPLAY_NAME = "Load Autoencoder (Atelier)"
    SEARCH_ALIASES = ["load model", "open model", "checkpoint", "model card", "vae loader"]
    DESCRIPTION = ("Loads an autoencoder saved with Save Autoencoder (a .safetensors file in models/autoencoders), "
                   "ready to encode, decode or train further. Only safetensors files are read, never pickles.")
    RETURN_TYPES = (AUTOENCODER, "STRING")
    RETURN_NAMES = ("autoencoder", "info")
    HAS_INTERMEDIATE_OUTPUT = True   # newer servers resend the card it shows when the result comes from the cache
    OUTPUT_TOOLTIPS = ("The loaded autoencoder, with its training state so further training resumes.",
                       "A short description of the model: architecture, compression, training so far.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ae_name": (bridge.list_models() or ["(no models yet: train and save one)"],
                                         {"tooltip": "A model file in models/autoencoders."})}}

    @classmethod
    def IS_CHANGED(cls, ae_name):
        try:  # reload when the file changes on disk (a save replaces it: new inode)
            st = os.stat(resolve_model_path(ae_name))
            return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        except (OSError, ValueError):
            return ae_name

    def load(self, ae_name):
        ae = storage.load_autoencoder(resolve_model_path(ae_name))
        card = storage.card_text(ae)
        return {"ui": {"text": [card]}, "result": (ae, card)}


def model_save_paths(prefix, folder):
    """``folder/<prefix>_NNNNN.safetensors`` from the next free counter on; prefix may hold subfolders."""
    directory, stem, _, n = numbered_files(prefix, folder, ".safetensors")
    return candidates(directory, stem, ".safetensors", n)


class AtelierSaveAutoencoder(AtelierNode):
    DISPLAY_NAME = "Save Autoencoder (Atelier)"
    SEARCH_ALIASES = ["save model", "export model", "checkpoint", "safetensors"]
    DESCRIPTION = ("Saves the autoencoder (weights, training state and a description) as a .safetensors file in "
                   "models/autoencoders, numbered so nothing is overwritten. Load it later with Load Autoencoder.")
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Where the file was written.",)
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The (trained) autoencoder to save."),
            "filename_prefix": STRING("atelier", "File name start; a counter and .safetensors are added. "
                                      "Use 'folder/name' to save into a subfolder."),
        }}

    VALIDATE_INPUTS = staticmethod(validate_prefix)

    def save(self, autoencoder, filename_prefix):
        folder = bridge.model_dirs()[0]
        try:
            path = storage.save_new_autoencoder(autoencoder, model_save_paths(filename_prefix, folder))
        except OSError as e:  # disk full, read-only folder, a name the file system refuses
            raise AtelierError(f"could not write into {folder} ({e.strerror or e}); nothing was saved. Free some "
                               "disk space, make the folder writable, or try a plainer filename_prefix") from None
        bridge.log.info("saved autoencoder to %s", path)
        return {"ui": {"text": [path]}, "result": (path,)}
