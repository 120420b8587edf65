"""Reading artworks from a folder into an IMAGE batch [N,H,W,3] float32 0..1.

Handles what artists' folders contain: grayscale, RGBA, palette, CMYK and 16-bit files,
EXIF rotation, and stray non-image files (skipped). Only ``count`` files are opened.
"""
import logging
import os
import random

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MODES = ("resize", "center-crop", "random-crops")


class ImageFolderError(ValueError):
    """A folder or image that cannot be loaded; the message says how to fix it."""


def list_images(folder):
    if not folder or not os.path.isdir(folder):
        raise ImageFolderError(f"folder {folder!r} does not exist; give the full path to a folder of images")
    names = sorted(n for n in os.listdir(folder)
                   if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS and not n.startswith("."))
    if not names:
        raise ImageFolderError(f"folder {folder!r} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [os.path.join(folder, n) for n in names]


def to_rgb_array(img):
    """Any PIL image -> float32 [H,W,3] in 0..1 (alpha composited over white)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        a = a / (65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0)
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def open_image(path):
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb_array(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageFolderError(f"cannot read {os.path.basename(path)} ({e}); remove it from the folder or "
                               "re-save it as PNG/JPEG") from None


def _fit(a, size, mode, rng, resample):
    """[H,W,3] array -> [size,size,3] by resize, centre crop or random crop."""
    img = Image.fromarray((a * 255.0 + 0.5).astype(np.uint8)) if a.dtype != np.uint8 else Image.fromarray(a)
    w, h = img.size
    if mode == "resize":
        return img.resize((size, size), resample)
    if mode == "center-crop":
        return ImageOps.fit(img, (size, size), resample)
    # random-crops: native resolution unless the image is smaller than the crop.
    if min(w, h) < size:
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample)
        w, h = img.size
    x, y = rng.randint(0, w - size), rng.randint(0, h - size)
    return img.crop((x, y, x + size, y + size))


def load_folder(folder, size=256, mode="center-crop", count=0, seed=0, resample=Image.LANCZOS):
    """Load up to ``count`` images (0 = all) as [N,size,size,3]; random-crops makes ``count`` crops.
    ``resample`` is PIL's filter for resizing (Lanczos keeps the most detail)."""
    if mode not in MODES:
        raise ImageFolderError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if size < 1:
        raise ImageFolderError("size must be at least 1 pixel")
    paths = list_images(folder)
    rng = random.Random(seed)
    if mode == "random-crops":
        n = count or len(paths)
        sources = [open_image(p) for p in paths[:n]]   # each file opened once, cropped many times
        out = [_fit(sources[i % len(sources)], size, mode, rng, resample) for i in range(n)]
    else:
        out = [_fit(open_image(p), size, mode, rng, resample) for p in (paths[:count] if count else paths)]
    arr = np.stack([np.asarray(o.convert("RGB"), dtype=np.float32) / 255.0 for o in out])
    log.info("loaded %d images (%s, %dpx) from %s", len(out), mode, size, folder)
    return torch.from_numpy(arr)
