"""Pictures nodes output: image grids and the training loss curve (IMAGE tensors [1,H,W,3])."""
import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def image_grid(images, columns=0, padding=2, background=1.0):
    """[B,H,W,3] -> [1,H',W',3]; columns=0 picks a near-square layout."""
    b, h, w, c = images.shape
    cols = columns if columns > 0 else math.ceil(math.sqrt(b))
    cols = min(cols, b)
    rows = math.ceil(b / cols)
    out = images.new_full((rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, c), background)
    for i in range(b):
        r, k = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        out[y:y + h, x:x + w] = images[i]
    return out[None]


def to_pil(image_bhwc):
    """The first picture of an IMAGE batch as a PIL image (rounded to 8 bits)."""
    return Image.fromarray((image_bhwc[0].clamp(0, 1).numpy() * 255 + 0.5).astype("uint8"))


def _to_tensor(img):
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]


def loss_curve(history, width=640, height=320, title="training loss"):
    """A log-scale line plot of the loss per step, with a smoothed line on top."""
    img = Image.new("RGB", (width, height), (250, 250, 248))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 64, 16, 28, 36
    d.text((left, 8), title, fill=(40, 40, 40), font=font)
    vals = np.asarray([v for v in history if v > 0 and math.isfinite(v)], dtype=np.float64)
    if len(vals) < 2:
        d.text((left, height // 2), "no training steps yet", fill=(120, 120, 120), font=font)
        return _to_tensor(img)
    lo, hi = np.log10(vals.min()), np.log10(vals.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    pw, ph = width - left - right, height - top - bottom

    def xy(i, v):
        return left + pw * i / (len(vals) - 1), top + ph * (1 - (np.log10(v) - lo) / (hi - lo))

    for e in range(math.floor(lo), math.ceil(hi) + 1):  # decade grid lines
        if lo <= e <= hi:
            y = xy(0, 10.0 ** e)[1]
            d.line([(left, y), (width - right, y)], fill=(225, 225, 225))
            d.text((6, y - 6), f"1e{e}", fill=(90, 90, 90), font=font)
    for v in (vals.max(), vals.min()):
        d.text((6, xy(0, v)[1] - 6), f"{v:.2g}", fill=(90, 90, 90), font=font)
    d.rectangle([left, top, width - right, height - bottom], outline=(160, 160, 160))
    d.line([xy(i, v) for i, v in enumerate(vals)], fill=(170, 190, 230), width=1)
    k = max(1, len(vals) // 50)
    smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
    d.line([xy(i + k // 2, v) for i, v in enumerate(smooth)], fill=(30, 80, 200), width=2)
    d.text((left, height - bottom + 8), "step 0", fill=(90, 90, 90), font=font)
    d.text((width - right - 70, height - bottom + 8), f"step {len(vals)}", fill=(90, 90, 90), font=font)
    d.text((left + pw // 2 - 40, height - bottom + 8), f"last {vals[-1]:.4g}", fill=(30, 80, 200), font=font)
    return _to_tensor(img)


def bar_chart(values, width=640, height=320, title="", label="{:.1%}"):
    """Bars for a few values (e.g. the share of variance each latent direction explains)."""
    img = Image.new("RGB", (width, height), (250, 250, 248))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((16, 8), title, fill=(40, 40, 40), font=font)
    vals = [float(v) for v in values]
    top, bottom, left = 30, 30, 16
    if vals:
        bw = (width - 2 * left) / len(vals)
        peak = max(max(vals), 1e-12)
        for i, v in enumerate(vals):
            x0 = left + i * bw
            y0 = top + (height - top - bottom) * (1 - v / peak)
            d.rectangle([x0 + 2, y0, x0 + bw - 2, height - bottom], fill=(60, 110, 200))
            d.text((x0 + 2, height - bottom + 4), str(i), fill=(60, 60, 60), font=font)
            d.text((x0 + 2, max(top, y0 - 12)), label.format(v), fill=(60, 60, 60), font=font)
    return _to_tensor(img)
