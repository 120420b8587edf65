"""Minimal stand-ins for ComfyUI's LoadImage, SaveImage, PreviewImage and SaveAnimatedWEBP, for headless
runs.

They read and write the same way (input folder, ``<prefix>_NNNNN_.png`` in the output folder)
so a workflow behaves alike in ComfyUI and on the command line.
"""
import os
import re
import tempfile

import numpy as np
import torch

from ..models.files import list_files, write_new_file
from ..models.formats import image_to_pil
from ..models.imagefolder import IMAGE_EXTENSIONS, ImageFolderError, decode, to_float, to_rgb8
from ..nodes import bridge
from ..nodes.base import user_errors
from ..nodes.save_paths import candidates, numbered_files, validate_prefix


class LoadImage:
    """ComfyUI's Load Image: every frame the size of the first (MPO: the first only), EXIF rotation applied
    to image and mask alike, mask = 1 - alpha (palette transparency too), else a 64x64 zero mask."""
    CATEGORY, FUNCTION = "image", "load_image"
    RETURN_TYPES = ("IMAGE", "MASK")
    CHEAP = True   # runs in the pre-flight (nodes/base.py)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (list_files(bridge.input_dir(), IMAGE_EXTENSIONS), {"image_upload": True})}}

    def load_image(self, image):
        path = input_path(image)
        if not os.path.isfile(path):
            raise ValueError(f"Load Image: there is no image file {path}. Image names are looked up in the input "
                             f"folder, {bridge.input_dir()} (change it with --input-dir or ATELIER_INPUT_DIR)")
        try:
            frames = decode(path, frames=True)
        except ImageFolderError as e:
            raise ValueError(f"Load Image: {e}") from None
        images, masks = [], []
        for frame in frames:
            if frame.size != frames[0].size:
                continue
            images.append(torch.from_numpy(to_float(to_rgb8(frame, composite=False))))
            if "A" in frame.getbands() or (frame.mode == "P" and "transparency" in frame.info):
                alpha = np.asarray(frame.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
                masks.append(1.0 - torch.from_numpy(alpha))
            else:
                masks.append(torch.zeros(64, 64))
        if len({tuple(m.shape) for m in masks}) > 1:  # some frames transparent, some not: one grid for all
            masks = [m if m.shape == images[0].shape[:2] else torch.zeros(images[0].shape[:2]) for m in masks]
        return torch.stack(images), torch.stack(masks)


def input_path(name):
    """A file inside the input folder, as ComfyUI reads it: no absolute paths, drives or '..'."""
    parts = re.split(r"[\\/]", name) if isinstance(name, str) else [""]
    if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) \
            or ".." in parts or "\0" in name:
        raise ValueError(f"Load Image: {name!r} is not a file in the input folder; pick one from the list")
    return os.path.join(bridge.input_dir(), *parts)


def save_numbered(prefix, folder, suffix, node, kind, write):
    """Write one file named as ComfyUI's savers do (``<prefix>_NNNNN_.png``), claiming a free number
    atomically; returns its entry for the node's "ui" output."""
    directory, stem, subfolder, counter = user_errors(numbered_files, node)(prefix, folder, suffix)
    path = write_new_file(candidates(directory, stem, suffix, counter), write)
    return {"filename": os.path.basename(path), "subfolder": subfolder, "type": kind, "path": path}


def save_images(images, folder, prefix, kind):
    """Write a batch as numbered PNGs."""
    return [save_numbered(prefix, folder, "_.png", "Save Image", kind,
                          lambda tmp, im=image_to_pil(img): im.save(tmp, format="PNG")) for img in images]


class SaveImage:
    CATEGORY, FUNCTION, OUTPUT_NODE = "image", "save_images", True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

    VALIDATE_INPUTS = staticmethod(validate_prefix)   # ComfyUI's own savers check late; here, before any work

    def save_images(self, images, filename_prefix="ComfyUI"):
        return {"ui": {"images": save_images(images, bridge.output_dir(), filename_prefix, "output")}}


_preview_dir = []


def preview_dir():
    """This process's private folder for previews (mkdtemp: no fixed name in /tmp another user could own)."""
    if not _preview_dir:
        _preview_dir.append(tempfile.mkdtemp(prefix="atelier_preview_"))
    return _preview_dir[0]


class PreviewImage:
    CATEGORY, FUNCTION, OUTPUT_NODE = "image", "save_images", True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    def save_images(self, images):
        return {"ui": {"images": save_images(images, preview_dir(), "preview", "temp")}}


class SaveAnimatedWEBP:
    """Same inputs as ComfyUI's (so widget values line up); writes ``<prefix>_NNNNN_.webp``."""
    CATEGORY, FUNCTION, OUTPUT_NODE = "image/animation", "save_images", True
    RETURN_TYPES = ()
    METHODS = {"default": 4, "fastest": 0, "slowest": 6}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"}),
                             "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                             "lossless": ("BOOLEAN", {"default": True}),
                             "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
                             "method": (list(cls.METHODS),)}}

    VALIDATE_INPUTS = staticmethod(validate_prefix)

    def save_images(self, images, fps, filename_prefix, lossless, quality, method):
        frames = [image_to_pil(img) for img in images]

        def write(tmp):
            frames[0].save(tmp, format="WEBP", save_all=True, append_images=frames[1:], duration=int(1000.0 / fps),
                           lossless=lossless, quality=quality, method=self.METHODS[method])
        entry = save_numbered(filename_prefix, bridge.output_dir(), "_.webp", "Save Animated WEBP", "output", write)
        return {"ui": {"images": [entry], "animated": (len(frames) > 1,)}}


CORE_NODES = {"LoadImage": LoadImage, "SaveImage": SaveImage, "PreviewImage": PreviewImage,
              "SaveAnimatedWEBP": SaveAnimatedWEBP}
