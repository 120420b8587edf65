#!/usr/bin/env python3
"""Writes docs/icon.png (the registry icon): nine frames of the demo's latent walk (docs/walk_strip.png) in a
3x3 grid, so the icon is the pack's own output.    python tools/make_icon.py"""
import os

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE, PAD, SIDE = 128, 2, 256   # walk_strip.png: 128-pixel frames with 2-pixel padding


def main():
    strip = Image.open(os.path.join(ROOT, "docs", "walk_strip.png")).convert("RGB")
    frames = (strip.width - PAD) // (TILE + PAD)
    picks = [round(i * (frames - 1) / 8) for i in range(9)]
    gap = 6
    icon = Image.new("RGB", (3 * TILE + 2 * gap,) * 2, (24, 24, 24))
    for k, f in enumerate(picks):
        x0 = PAD + f * (TILE + PAD)
        tile = strip.crop((x0, PAD, x0 + TILE, PAD + TILE))
        icon.paste(tile, ((k % 3) * (TILE + gap), (k // 3) * (TILE + gap)))
    icon.resize((SIDE, SIDE), Image.LANCZOS).save(os.path.join(ROOT, "docs", "icon.png"), optimize=True)


if __name__ == "__main__":
    main()
