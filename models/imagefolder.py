"""Reading artworks from a folder into an IMAGE batch [N,H,W,3] float32 0..1.

Handles what artists' folders contain: grayscale, RGBA, palette, CMYK, 16-bit and float files,
EXIF rotation, and stray non-image files (skipped). Only ``count`` files are opened, and only
regular files: a FIFO or device named like an image would block or never end. Huge images and
decompression bombs are refused from their header, before decoding, when their pixels exceed the
memory budget (models/memory.py); the rest are decoded at reduced size where the format allows
(JPEG draft) and resized in 8 bit, so only the final small images are ever float.
"""
import contextlib
import logging
import os
import random
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import interrupt, memory
from .errors import AtelierError
from .files import list_files, open_regular

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MODES = ("resize", "center-crop", "random-crops")
# A decoded 8-bit image with alpha, plus one converted copy while it is made RGB.
BYTES_PER_DECODED_PIXEL = 8


class ImageFolderError(AtelierError):
    """A folder or image that cannot be loaded; the message says how to fix it."""


def list_images(folder):
    """Image files of ``folder``, sorted; only regular files (by file type, without opening them)."""
    if not folder or not os.path.isdir(folder):
        raise ImageFolderError(f"folder {folder!r} does not exist; give the full path to a folder of images")
    names = list_files(folder, IMAGE_EXTENSIONS)
    if not names:
        raise ImageFolderError(f"folder {folder!r} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [os.path.join(folder, n) for n in names]


def max_pixels():
    """The largest image (in pixels) a loader decodes: what fits the memory budget."""
    return memory.budget_bytes() // BYTES_PER_DECODED_PIXEL


def _unreadable(path, e):
    return ImageFolderError(f"cannot read {os.path.basename(path)} ({e}); remove it from the folder or "
                            "re-save it as PNG/JPEG")


@contextlib.contextmanager
def opened(path, frames=False):
    """``path`` opened safely as (PIL image with only its header read, frame count), for every reader of an
    image file: only regular files; refused from the header when its pixels (every frame's with ``frames``)
    exceed the memory budget; any failure in the block becomes an ImageFolderError saying what to do."""
    try:
        with open_regular(path) as f, warnings.catch_warnings():
            # Our own pixel limit below is the check; PIL's warning would reach the user raw.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(f)
            w, h = img.size
            n = getattr(img, "n_frames", 1) if frames and img.format != "MPO" else 1
            if w * h * n > max_pixels():
                raise ImageFolderError(
                    f"{os.path.basename(path)} is {w}x{h} pixels{f' x {n} frames' if n > 1 else ''} "
                    f"({w * h * n / 1e6:.0f} megapixels), more than the "
                    f"{max_pixels() / 1e6:.0f} megapixels that fit the memory budget of "
                    f"{memory.size_text(memory.budget_bytes())}; scale it down in an image editor first (or raise "
                    f"{memory.ENV})")
            yield img, n
    except ImageFolderError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageFolderError(f"{os.path.basename(path)} is too large to decode safely ({e}); scale it down in an "
                               "image editor first") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError, MemoryError) as e:
        raise _unreadable(path, e) from None


def decode(path, need=None, frames=False):
    """Open an image file safely: PIL image(s) with EXIF rotation applied, still in their own mode.
    ``need`` (w, h): the size the caller will shrink to, so JPEGs can be decoded smaller (draft).
    ``frames``: a list of every frame (except for MPO, whose frames are views of one photo: as ComfyUI's
    Load Image), else the first frame alone."""
    with opened(path, frames) as (img, n):
        if need and img.format == "JPEG":
            img.draft(img.mode, need)  # decodes at 1/2, 1/4 or 1/8 scale, never below ``need``
        out = []
        for i in range(n):
            img.seek(i)
            img.load()
            out.append(ImageOps.exif_transpose(_shrink(img, need)))
        return out if frames else out[0]


def _shrink(img, need):
    """Box-reduce by a whole factor that keeps at least twice the needed size, so the final resize (Lanczos)
    works on a small image: a 13000x13000 scan made into 64 px training images stays cheap."""
    factor = min(img.size) // max(need) // 2 if need else 0
    if factor < 2:
        return img
    if img.mode in ("1", "P"):  # no box filter for bits and palettes
        img = img.convert("L" if img.mode == "1" else "RGBA")
    try:
        return img.reduce(factor)
    except ValueError:  # a mode reduce() does not support: the resize does all the work
        return img


def to_rgb8(img, composite=True):
    """Any PIL image -> 8-bit RGB PIL image, high bit depths scaled to 0..255; alpha composited over white
    (``composite``) or dropped (as ComfyUI's Load Image does: the mask carries it)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        top = a.max(initial=0.0)
        # Float files hold 0..1; 32-bit integer files 0..255 or 16-bit values; 16-bit files 0..65535.
        scale = (65535.0 if img.mode.startswith("I;16") or top > 255 else
                 1.0 if img.mode == "F" and top <= 1.0 else 255.0)
        g = Image.fromarray((np.clip(a / scale, 0, 1) * 255.0 + 0.5).astype(np.uint8))
        return g.convert("RGB")
    if composite and (img.mode in ("RGBA", "LA", "PA", "La", "RGBa")
                      or (img.mode == "P" and "transparency" in img.info)):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, rgba)
    return img.convert("RGB")


def to_float(img):
    """8-bit PIL image -> float32 [H,W,3] in 0..1 (only ever done at the final size)."""
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def open_image(path, need=None):
    """An image file as 8-bit RGB PIL image (see ``decode``)."""
    return to_rgb8(decode(path, need))


def _fit(img, size, mode, rng, resample):
    """8-bit PIL image -> [size,size] by resize, centre crop or random crop."""
    w, h = img.size
    if mode == "resize":
        return img.resize((size, size), resample, reducing_gap=3.0)
    if mode == "center-crop":
        return ImageOps.fit(img, (size, size), resample)
    # random-crops: native resolution unless the image is smaller than the crop.
    if min(w, h) < size:
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample)
        w, h = img.size
    x, y = rng.randint(0, w - size), rng.randint(0, h - size)
    return img.crop((x, y, x + size, y + size))


def batch_bytes(n, size):
    """Memory of an IMAGE batch of n size x size images (float32 RGB) plus its 8-bit staging."""
    return n * size * size * 3 * (4 + 1)


def load_folder(folder, size=256, mode="center-crop", count=0, seed=0, resample=Image.LANCZOS):
    """Load up to ``count`` images (0 = all) as [N,size,size,3]; random-crops makes ``count`` crops.
    ``resample`` is PIL's filter for resizing (Lanczos keeps the most detail)."""
    if mode not in MODES:
        raise ImageFolderError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if size < 1:
        raise ImageFolderError("size must be at least 1 pixel")
    paths = list_images(folder)
    n = (count or len(paths)) if mode == "random-crops" else min(count or len(paths), len(paths))
    memory.check("count" if count else "count (0 = every file)", n, lambda k: batch_bytes(k, size),
                 advice="lower size")
    rng = random.Random(seed)
    # JPEGs for resize/center-crop can be decoded at a fraction of their size; random crops need every pixel.
    need = None if mode == "random-crops" else (size, size)
    out = [None] * n
    sources = paths[:n]
    for j, p in enumerate(sources):
        interrupt.check()                # a folder of big paintings takes minutes
        img = open_image(p, need)        # each file decoded once, however many crops it gives
        for i in range(j, n, len(sources)):
            out[i] = np.asarray(_fit(img, size, mode, rng, resample).convert("RGB"))
        del img
    arr = torch.from_numpy(np.stack(out)).float().div_(255.0)
    log.info("loaded %d images (%s, %dpx) from %s", n, mode, size, folder)
    return arr
