"""A small procedural "art" set, so demos and tests need no download and no shared data.

Each image layers a colour gradient, soft blobs, stripes and hard-edged shapes from one
of a few palettes: enough structure (edges, texture, smooth areas) to train on.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTES = [
    [(38, 70, 83), (42, 157, 143), (233, 196, 106), (244, 162, 97), (231, 111, 81)],
    [(13, 27, 42), (27, 38, 59), (65, 90, 119), (119, 141, 169), (224, 225, 221)],
    [(255, 190, 11), (251, 86, 7), (255, 0, 110), (131, 56, 236), (58, 134, 255)],
    [(88, 129, 87), (163, 177, 138), (218, 215, 205), (52, 78, 65), (58, 90, 64)],
]


def make_image(seed, size=128):
    rng = np.random.default_rng(seed)
    pal = np.array(PALETTES[rng.integers(len(PALETTES))], dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, np.pi)
    t = np.clip(np.cos(angle) * xx + np.sin(angle) * yy, 0, 1)[..., None]
    c0, c1 = pal[rng.choice(len(pal), 2, replace=False)]
    img = (1 - t) * c0 + t * c1
    for _ in range(rng.integers(2, 5)):  # soft blobs
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.35)
        w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - 0.8 * w) + 0.8 * w * pal[rng.integers(len(pal))]
    if rng.random() < 0.6:  # stripes
        f, phase = rng.uniform(6, 20), rng.uniform(0, 6.3)
        s = (np.sin((xx * np.cos(angle + 1) + yy * np.sin(angle + 1)) * f * 6.28 + phase) > 0.3)[..., None]
        img = np.where(s, img * 0.75 + 0.25 * pal[rng.integers(len(pal))], img)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(1, 5)):  # hard-edged shapes
        x0, y0 = rng.integers(0, size, 2)
        x1, y1 = x0 + rng.integers(size // 8, size // 2), y0 + rng.integers(size // 8, size // 2)
        colour = tuple(int(v) for v in pal[rng.integers(len(pal))])
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x1), int(y1)], fill=colour)
    return im.filter(ImageFilter.SMOOTH)


def with_holes(image, seed, holes=3):
    """An RGBA copy with ``holes`` transparent, blacked-out rectangles: a damaged picture whose damage is
    marked the way ComfyUI's mask editor marks it (Load Image turns transparency into its MASK)."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    out = image.convert("RGBA")
    draw = ImageDraw.Draw(out)
    for _ in range(holes):
        hw, hh = rng.integers(w // 10, w // 4), rng.integers(h // 10, h // 4)
        x0, y0 = rng.integers(0, w - hw), rng.integers(0, h - hh)
        draw.rectangle([int(x0), int(y0), int(x0 + hw), int(y0 + hh)], fill=(0, 0, 0, 0))
    return out


def make_images(count, size=128, seed=0):
    """float32 [count,size,size,3] in 0..1 (a ComfyUI IMAGE batch)."""
    return np.stack([np.asarray(make_image(seed * 100_003 + i, size), dtype=np.float32) / 255.0
                     for i in range(count)])


def write_folder(folder, count=48, size=128, seed=0):
    """Write the set as PNG files (for the image-folder loader); returns the paths."""
    import os
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        p = os.path.join(folder, f"art_{i:03d}.png")
        make_image(seed * 100_003 + i, size).save(p)
        paths.append(p)
    return paths


def make_digit(seed, size=28):
    """A white-on-black glyph 0-9 at a random position and scale: an MNIST stand-in."""
    from PIL import ImageFont
    rng = np.random.default_rng(seed)
    big = Image.new("L", (size * 4, size * 4), 0)
    draw = ImageDraw.Draw(big)
    font = ImageFont.load_default(size=int(size * 4 * rng.uniform(0.55, 0.8)))
    text = str(rng.integers(10))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    x = (big.width - (x1 - x0)) / 2 - x0 + rng.uniform(-8, 8)
    y = (big.height - (y1 - y0)) / 2 - y0 + rng.uniform(-8, 8)
    draw.text((x, y), text, fill=255, font=font, stroke_width=int(rng.integers(3, 8)), stroke_fill=255)
    big = big.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)
    return big.resize((size, size), Image.LANCZOS)


def write_digits(folder, count=256, size=28, seed=0):
    import os
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        make_digit(seed * 100_003 + i, size).save(os.path.join(folder, f"digit_{i:04d}.png"))
