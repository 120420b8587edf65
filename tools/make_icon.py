#!/usr/bin/env python3
"""Writes docs/icon.png (the registry icon, nine frames of the demo's latent walk docs/walk_strip.png in a 3x3
grid) and docs/banner.png (the registry banner, the walk's frames in one row), so both are the pack's own output.
    python tools/make_icon.py"""
import os

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE, PAD, SIDE = 128, 2, 256   # walk_strip.png: 128-pixel frames with 2-pixel padding


BANNER = (800, 200)


def frames(strip, n):
    count = (strip.width - PAD) // (TILE + PAD)
    for f in (round(i * (count - 1) / (n - 1)) for i in range(n)):
        x0 = PAD + f * (TILE + PAD)
        yield strip.crop((x0, PAD, x0 + TILE, PAD + TILE))


def sheet(tiles, columns, rows, gap=6):
    out = Image.new("RGB", (columns * TILE + (columns - 1) * gap, rows * TILE + (rows - 1) * gap), (24, 24, 24))
    for k, tile in enumerate(tiles):
        out.paste(tile, ((k % columns) * (TILE + gap), (k // columns) * (TILE + gap)))
    return out


def main():
    strip = Image.open(os.path.join(ROOT, "docs", "walk_strip.png")).convert("RGB")
    icon = sheet(frames(strip, 9), 3, 3)
    icon.resize((SIDE, SIDE), Image.LANCZOS).save(os.path.join(ROOT, "docs", "icon.png"), optimize=True)
    row = sheet(frames(strip, 4), 4, 1)
    row = row.resize((round(row.width * (BANNER[1] - 16) / row.height), BANNER[1] - 16), Image.LANCZOS)
    banner = Image.new("RGB", BANNER, (24, 24, 24))
    banner.paste(row, ((BANNER[0] - row.width) // 2, 8))
    banner.save(os.path.join(ROOT, "docs", "banner.png"), optimize=True)


if __name__ == "__main__":
    main()
