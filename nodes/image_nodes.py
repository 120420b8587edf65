"""Image nodes: a folder of artworks in, grids out."""
import math
import os

import torch

from ..models import memory
from ..models.dataset import WorkFolder
from ..models.formats import image_to_bchw
from ..models.imagefolder import MODES, list_images, load_folder
from ..models.plots import grid_shape, image_grid
from . import bridge
from .base import AtelierNode
from .schema import COMBO, DATASET, INT, LINK, SEED


def FOLDER():
    """The folder input: a dropdown of the input folder's subfolders and registered folders; a typed name (API,
    headless, older workflows) still works, as VALIDATE_INPUTS takes over the dropdown's check."""
    choices = bridge.image_folder_choices()
    return (choices or [""], {"default": choices[0] if choices else "", "tooltip": (
        "A folder of images (PNG, JPEG, WebP, TIFF...) inside ComfyUI's input folder. To read a folder elsewhere, "
        f"register it in extra_model_paths.yaml under '{bridge.DATASET_FOLDER}' (see the README); headless runs "
        "take any path.")})


def check_folder(folder):
    """VALIDATE_INPUTS for a folder input: a folder outside the allowed ones is refused before the prompt runs
    (what is in it is read, and reported on, when the node runs)."""
    try:
        bridge.image_folder(folder)
    except ValueError as e:
        return str(e)
    return True


def folder_state(folder):
    """IS_CHANGED for a folder input: reload when files are added, removed or replaced."""
    try:
        return str([(p, os.path.getmtime(p)) for p in list_images(bridge.image_folder(folder))])
    except (OSError, ValueError):
        return folder


class FolderLoader(AtelierNode):
    """What both folder loaders share: the folder is checked before the prompt runs, the node reloads when the
    folder's files change, and the headless pre-flight runs it first (it is read anyway before anything uses
    it, so nothing is lost). Not a node itself: it has no FUNCTION and is not in NODES."""
    CHEAP = True

    @classmethod
    def VALIDATE_INPUTS(cls, folder):
        return check_folder(folder)

    @classmethod
    def IS_CHANGED(cls, folder, *_, **__):   # the other inputs, by position or name, do not matter
        return folder_state(folder)


class AtelierLoadImageFolder(FolderLoader):
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
            "folder": FOLDER(),
            "size": INT(256, 8, 4096, "Side of the square images produced, in pixels.", step=8),
            "mode": COMBO(list(MODES), "resize: squash each image to a square. center-crop: keep proportions, "
                          "cut the sides. random-crops: cut 'count' random squares at full resolution "
                          "(good for training on a few large paintings).", default="center-crop"),
            "count": INT(0, 0, 100000, "How many images to load (0 = all); for random-crops, how many crops."),
        }, "optional": {
            "seed": SEED("Seed for where random crops fall (random-crops mode).", advanced=True),
        }}

    def load(self, folder, size, mode, count, seed=0):
        return (load_folder(bridge.image_folder(folder), size, mode, count, seed),)


class AtelierLoadDataset(FolderLoader):
    DISPLAY_NAME = "Load Dataset Folder (Atelier)"
    SEARCH_ALIASES = ["training data", "train", "dataset", "large collection", "full resolution", "crops", "lazy"]
    DESCRIPTION = ("A folder of artworks for training on random crops at full resolution, however many works and "
                   "whatever their sizes: only a few are held in memory at a time, read as training goes (Load "
                   "Image Folder instead loads every image into one batch). Connect it to the dataset input of "
                   "Train Autoencoder or Train Latent Prior.")
    RETURN_TYPES = (DATASET,)
    RETURN_NAMES = ("dataset",)
    OUTPUT_TOOLTIPS = ("The works, read lazily while training (set the training node's crop_size).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": FOLDER(),
            "max_side": INT(2048, 0, 16384, "Works whose longer side is larger are scaled down to it when read "
                            "(0 = full size). Crops are cut from the scaled work.", step=8, advanced=True),
            "count": INT(0, 0, 1_000_000, "How many works to use, in file-name order (0 = all).", advanced=True),
        }}

    def load(self, folder, max_side, count):
        return (WorkFolder(bridge.image_folder(folder), max_side, count),)


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

    @classmethod
    def batch_sizes(cls, **_):
        return (1,)

    def grid(self, images, columns, padding):
        if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[0]:
            b, h, w = images.shape[:3]
            memory.check("padding", int(padding), lambda p: math.prod(
                grid_shape(b, h, w, int(columns), p)[2:]) * 3 * memory.FLOAT_BYTES, lowest=0,
                advice="pass fewer or smaller images")
        # gray, RGBA, NaN or out-of-range pixels become plain RGB in 0..1, as Save Image expects
        return (image_grid(image_to_bchw(images, "clean").movedim(1, -1), columns, padding),)
