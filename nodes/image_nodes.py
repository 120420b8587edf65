"""Image nodes: a folder of artworks in, grids out."""
import math
import os

import torch

from ..models import memory
from ..models.formats import image_to_bchw
from ..models.imagefolder import MODES, ImageFolderError, list_images, load_folder
from ..models.plots import grid_shape, image_grid
from . import bridge
from .base import AtelierNode
from .schema import COMBO, INT, LINK, SEED, STRING


def _folder(folder):
    """Absolute folder, relative paths taken from ComfyUI's input folder."""
    folder = os.path.expanduser((folder or "").strip().strip('"'))
    return folder if os.path.isabs(folder) else os.path.join(bridge.input_dir(), folder)


class AtelierLoadImageFolder(AtelierNode):
    DISPLAY_NAME = "Load Image Folder (Atelier)"
    SEARCH_ALIASES = ["training images", "training data", "train", "dataset", "load images", "batch"]
    DESCRIPTION = ("Loads every image in a folder (your artworks) as one batch of equal-sized images for "
                   "training. Relative folder names are looked up in ComfyUI's input folder.")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The images as one batch, all size x size.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": STRING("", "Path to a folder of images (PNG, JPEG, WebP, TIFF...). Relative paths are "
                             "inside ComfyUI's input folder; empty = the input folder itself."),
            "size": INT(256, 8, 4096, "Side of the square images produced, in pixels.", step=8),
            "mode": COMBO(list(MODES), "resize: squash each image to a square. center-crop: keep proportions, "
                          "cut the sides. random-crops: cut 'count' random squares at full resolution "
                          "(good for training on a few large paintings).", default="center-crop"),
            "count": INT(0, 0, 100000, "How many images to load (0 = all); for random-crops, how many crops."),
        }, "optional": {
            "seed": SEED("Seed for where random crops fall (random-crops mode)."),
        }}

    @classmethod
    def IS_CHANGED(cls, folder, size, mode, count, seed=0):
        try:  # reload when files are added, removed or replaced
            return str([(p, os.path.getmtime(p)) for p in list_images(_folder(folder))])
        except (OSError, ImageFolderError):
            return folder

    def load(self, folder, size, mode, count, seed=0):
        return (load_folder(_folder(folder), size, mode, count, seed),)


class AtelierImageGrid(AtelierNode):
    DISPLAY_NAME = "Image Grid (Atelier)"
    SEARCH_ALIASES = ["grid", "contact sheet", "montage", "tile", "batch to image"]
    DESCRIPTION = "Lays a batch of images out as one grid picture, e.g. to save a strip of latent mixes."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("grid",)
    OUTPUT_TOOLTIPS = ("One image holding the whole batch.",)
    FUNCTION = "grid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": LINK("IMAGE", "The batch to lay out (all images the same size)."),
            "columns": INT(0, 0, 256, "Images per row (0 = as square as possible)."),
            "padding": INT(2, 0, 64, "White gap between images, in pixels."),
        }}

    def grid(self, images, columns, padding):
        if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[0]:
            b, h, w = images.shape[:3]
            memory.check("padding", int(padding), lambda p: math.prod(
                grid_shape(b, h, w, int(columns), p)[2:]) * 3 * memory.FLOAT_BYTES, lowest=0,
                advice="pass fewer or smaller images")
        # gray, RGBA, NaN or out-of-range pixels become plain RGB in 0..1, as Save Image expects
        return (image_grid(image_to_bchw(images, "clean").movedim(1, -1), columns, padding),)
