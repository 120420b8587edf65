#!/usr/bin/env python3
"""Makes the README's pictures of the creative nodes (docs/*.png) from procedural art, no download:

    python tools/make_pictures.py

It calls the same node classes a workflow runs: one conv model trained on 48 generated works for
samples, a direction sweep, a style mix and a collage, and one trained with corruption=holes for
a restoration before/after on works it never saw. (The walk strip comes from `atelier.py demo`.)
"""
import logging
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

atelier.load_pack()
from autoencoder_atelier.models import procedural  # noqa: E402
from autoencoder_atelier.models.losses import psnr  # noqa: E402
from autoencoder_atelier.models.formats import image_to_pil  # noqa: E402
from autoencoder_atelier.models.plots import image_grid  # noqa: E402
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS  # noqa: E402

DOCS = os.path.join(ROOT, "docs")


def run(name, *args, **kwargs):
    """Call a node the way ComfyUI does: its FUNCTION on a fresh instance."""
    cls = NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)(*args, **kwargs)


def save(images, name, columns):
    path = os.path.join(DOCS, name)
    image_to_pil(image_grid(images, columns=columns, padding=4)).save(path)
    print("wrote", path)


def train(images, steps, **settings):
    (ae,) = run("AtelierNewAutoencoder", "conv", 8, settings.pop("downscale", "8"), 32, 64, 0)
    ae, _, _ = run("AtelierTrainAutoencoder", ae, images, steps, 16, 0.002, 0, "mse", crop_size=64, **settings)
    return ae


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    works = torch.from_numpy(procedural.make_images(48, 128, seed=0))
    new = torch.from_numpy(procedural.make_images(6, 128, seed=7))     # held out
    ae = train(works, 1500)
    decode = lambda lat: run("AtelierDecode", ae, lat)[0]
    encode = lambda imgs: run("AtelierEncode", ae, imgs)[0]

    (samples,) = run("AtelierSampleLatent", ae, 8, 128, 128, 3, 0.9)
    save(decode(samples), "samples.png", 8)

    (directions, _) = run("AtelierLatentDirections", encode(works), 4)
    rows = []
    for k in range(3):
        for s in (-3.0, -1.5, 0.0, 1.5, 3.0):
            rows.append(decode(run("AtelierLatentEdit", encode(new[:1]), directions, k, s)[0]))
    save(torch.cat(rows), "direction_sweep.png", 5)

    content, style = encode(new[1:2]), encode(new[2:3])
    mixes = [decode(run("AtelierLatentStyleMix", content, style, s)[0]) for s in (0.5, 1.0)]
    save(torch.cat([new[1:2], new[2:3], *mixes]), "style_mix.png", 4)

    a, b = encode(new[3:4]), encode(new[4:5])
    cuts = [decode(run("AtelierLatentCollage", a, b, split, 0.5, 2.0)[0]) for split in ("left-right", "circle")]
    save(torch.cat([new[3:4], new[4:5], *cuts]), "collage.png", 4)

    restorer = train(works, 1000, downscale="4", corruption="holes", corruption_strength=0.5)
    damaged, masks = [], []
    for i in range(4):
        pic = procedural.with_holes(procedural.make_image(7 * 100_003 + i, 128), seed=i)
        rgba = torch.from_numpy(np.asarray(pic, dtype=np.float32) / 255)
        masks.append(1 - rgba[..., 3])
        damaged.append(rgba[..., :3] * rgba[..., 3:])
    damaged, masks = torch.stack(damaged), torch.stack(masks)
    (restored,) = run("AtelierRestore", restorer, damaged, 2, mask=masks)
    clean = new[:4]
    shown = damaged + 0.5 * masks[..., None]
    nchw = lambda t: t.movedim(-1, 1)
    print(f"restoration on 4 held-out works: grey-filled holes {psnr(nchw(shown), nchw(clean)):.2f} dB -> "
          f"restored {psnr(nchw(restored), nchw(clean)):.2f} dB")
    save(torch.cat([damaged, restored, clean]), "restoration.png", 4)
    print(f"done in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
