"""A lazy collection of works for training on random crops, with bounded memory whatever its size.

As one IMAGE batch, 500 works of 1024x1024 take 6 GB of float32 before training starts. Here the folder
is only listed (and each file's header read) up front; training draws its crops from a small pool of
decoded works (uint8, at most ``POOL_BYTES``) that slides along a seeded order of the collection, one
new work per step. The pool is a pure function of (seed, step), so a batch is too, as with an IMAGE.
Works keep their own sizes and aspect ratios; one smaller than the crop is scaled up to fit it.
"""
import logging
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from .imagefolder import list_images, open_image, opened

log = logging.getLogger(__name__)

POOL_BYTES = 256 << 20    # decoded works held at once
POOL_WORKS = (4, 64)      # fewest and most works in the pool
NEW_PER_STEP = 1          # works decoded per training step once the pool is full


def _header_size(path):
    """(width, height) as shown (EXIF rotation applied), read without decoding the pixels; refused as
    Load Image Folder refuses the file (too large for the memory budget, a decompression bomb, unreadable)."""
    with opened(path) as (img, _):
        w, h = img.size
        if img.getexif().get(0x0112) in (5, 6, 7, 8):
            w, h = h, w
        return w, h


class WorkFolder:
    """The ATELIER_DATASET value: the works of a folder, read per batch. Never changed once made."""

    def __init__(self, folder, max_side=0, count=0):
        paths = list_images(folder)
        self.folder, self.paths = folder, paths[:count] if count else paths
        self.max_side = int(max_side)
        self.sizes = [self._shown(_header_size(p)) for p in self.paths]
        per_work = max(w * h * 3 for w, h in self.sizes)
        self.pool_size = int(min(len(self.paths), max(POOL_WORKS[0], min(POOL_WORKS[1], POOL_BYTES // per_work))))
        self._cache = OrderedDict()   # work index -> (crop side it was fitted to, uint8 [3,H,W])
        log.info("dataset of %d works from %s (pool of %d)", len(self.paths), folder, self.pool_size)

    def _shown(self, size):
        w, h = size
        scale = min(1.0, self.max_side / max(w, h)) if self.max_side else 1.0
        return max(1, round(w * scale)), max(1, round(h * scale))

    def __len__(self):
        return len(self.paths)

    def __repr__(self):
        return f"WorkFolder({self.describe()}, max_side {self.max_side})"

    def describe(self):
        (w0, h0), (w1, h1) = min(self.sizes), max(self.sizes)
        return f"{len(self)} works from {self.folder}, {w0}x{h0} to {w1}x{h1}"

    # -- works --------------------------------------------------------------------------
    def work(self, i, min_side=1):
        """Work ``i`` as uint8 [3,H,W], scaled down to max_side and up so its short side is >= ``min_side``."""
        hit = self._cache.get(i)
        if hit is not None and hit[0] == min_side:
            self._cache.move_to_end(i)
            return hit[1]
        w, h = self._shown(self.sizes[i])
        scale = max(1.0, min_side / min(w, h))
        w, h = max(min_side, round(w * scale)), max(min_side, round(h * scale))
        # open_image, the one reader of a work: every mode (RGBA, palette, 16-bit, CMYK) comes out 8-bit RGB,
        # special files and images over the memory budget are refused, JPEGs are decoded at reduced size.
        img = open_image(self.paths[i], (w, h))
        if img.size != (w, h):
            img = img.resize((w, h), Image.LANCZOS)
        t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        self._cache[i] = (min_side, t)
        while len(self._cache) > self.pool_size:
            self._cache.popitem(last=False)
        return t

    def order(self, seed):
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(int(seed) % (2 ** 63))).tolist()

    def pool(self, seed, step):
        """Indices of the works crops are drawn from at ``step``: a window sliding along the seeded order."""
        order, start = self.order(seed), step * NEW_PER_STEP
        return [order[(start + k) % len(order)] for k in range(self.pool_size)]

    def release(self):
        """Drop the decoded works (after training; ComfyUI keeps this value cached)."""
        self._cache.clear()

    # -- what training reads -------------------------------------------------------------
    def crops(self, seed, step, count, crop, generator):
        """``count`` random crops [count,3,ch,cw] float32 0..1 for ``step``, drawn with ``generator``."""
        ch, cw = crop
        pool = self.pool(seed, step)
        picks = torch.randint(len(pool), (count,), generator=generator).tolist()
        out = torch.empty(count, 3, ch, cw, dtype=torch.uint8)
        for k, p in enumerate(picks):
            t = self.work(pool[p], max(ch, cw))
            top = int(torch.randint(t.shape[1] - ch + 1, (1,), generator=generator))
            left = int(torch.randint(t.shape[2] - cw + 1, (1,), generator=generator))
            out[k] = t[:, top:top + ch, left:left + cw]
        return out.float().div_(255.0)

    def centre_crops(self, seed, n, crop):
        """Centre crops of the first ``n`` works of the starting pool (previews, PCA start, latent statistics)."""
        ch, cw = crop
        out = []
        for i in self.pool(seed, 0)[:n]:
            t = self.work(i, max(ch, cw))
            top, left = (t.shape[1] - ch) // 2, (t.shape[2] - cw) // 2
            out.append(t[:, top:top + ch, left:left + cw])
        return torch.stack(out).float().div_(255.0)
