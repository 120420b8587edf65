"""Pictures nodes output: image grids and the training loss curve (IMAGE tensors [1,H,W,3])."""
import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .losses import loss_label, smoothed_loss


def grid_shape(b, h, w, columns=0, padding=2):
    """(rows, columns, height, width) of the grid ``image_grid`` makes of b images of h x w."""
    cols = min(columns if columns > 0 else math.ceil(math.sqrt(b)), b)
    rows = math.ceil(b / cols)
    return rows, cols, rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding


def image_grid(images, columns=0, padding=2, background=1.0):
    """[B,H,W,3] -> [1,H',W',3]; columns=0 picks a near-square layout."""
    b, h, w, c = images.shape
    rows, cols, gh, gw = grid_shape(b, h, w, columns, padding)
    out = images.new_full((gh, gw, c), background)
    for i in range(b):
        r, k = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        out[y:y + h, x:x + w] = images[i]
    return out[None]


def caption(img, text):
    """Write ``text`` on a PIL image's top-left corner, on a light box so it reads on any picture."""
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = d.textbbox((4, 4), text, font=font)
    d.rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], fill=(250, 250, 248))
    d.text((4, 4), text, fill=(40, 120, 50), font=font)
    return img


def _to_tensor(img):
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]


def _log_ticks(lo, hi):
    """Round values between 10**lo and 10**hi for a log axis: decades, else 1-2-5 in each decade, if that gives 3
    or more; else (a narrow range) evenly spaced round values, 3 to 8 of them."""
    for mantissas in ((1,), (1, 2, 5)):
        ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in mantissas]
        ticks = [t for t in ticks if lo <= math.log10(t) <= hi]
        if len(ticks) >= 3:
            return ticks
    a, b = 10.0 ** lo, 10.0 ** hi
    unit = 10.0 ** math.floor(math.log10((b - a) / 4))
    step = next(m * unit for m in (1, 2, 5, 10) if (b - a) / (m * unit) <= 8)
    return [k * step for k in range(math.ceil(a / step), math.floor(b / step) + 1)]


def _step_ticks(n):
    """Round step numbers 0..n, 4 to 10 of them."""
    unit = 10 ** max(0, math.floor(math.log10(max(n, 1))) - 1)
    for m in (1, 2, 5, 10, 20, 50):
        if n / (m * unit) <= 8:
            return list(range(0, n + 1, m * unit))
    return [0, n]


def loss_curve(history, width=640, height=360, title="training loss", adversarial=(), validation=()):
    """The loss per step on a log scale: the raw values faint, their running mean (smoothed_loss) on top,
    and its last value, the same "last loss" the model card shows. Loss sharp's adversarial part (its size,
    orange, same axis) and the held-back works' PSNR (``validation``: [step, dB] pairs, green, scaled to the
    plot's height) when given."""
    img = Image.new("RGB", (width, height), (250, 250, 248))
    d = ImageDraw.Draw(img)
    font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=12)
    ink, grey, blue = (40, 40, 40), (100, 100, 100), (30, 80, 200)
    left, right, top, bottom = 84, 20, 40, 48
    d.text((left, 12), title, fill=ink, font=font)
    vals = np.asarray([v for v in history if v > 0 and math.isfinite(v)], dtype=np.float64)
    adv = np.abs(np.asarray(adversarial[-len(vals):] if len(vals) else [], dtype=np.float64))
    adv_on = adv[adv > 0]
    if len(vals) < 2:
        d.text((left, height // 2), "no training steps yet", fill=grey, font=font)
        return _to_tensor(img)
    smooth = smoothed_loss(vals)
    last = loss_label(smooth[-1])
    last_w = d.textlength(last, font=font)
    if left + d.textlength(title, font=font) + 24 + last_w <= width - right:
        d.text((width - right - last_w, 12), last, fill=blue, font=font)
    else:   # a long title (a blow-up's message): the figure goes on a line of its own
        d.text((left, 30), last, fill=blue, font=font)
        top += 18
    both = np.concatenate([vals, adv_on]) if len(adv_on) else vals
    lo, hi = np.log10(both.min()), np.log10(both.max())
    pad = max(hi - lo, 0.2) * 0.05   # a little air, and a visible range for a flat curve
    lo, hi = lo - pad, hi + pad
    pw, ph = width - left - right, height - top - bottom
    n = len(vals)

    def x(step):
        return left + pw * step / n

    def y(v):
        return top + ph * (1 - (math.log10(v) - lo) / (hi - lo))

    ticks = sorted(_log_ticks(lo, hi), reverse=True)
    digits = next(k for k in range(2, 8) if len({f"{t:.{k}g}" for t in ticks}) == len(ticks))
    last_y = -99
    for t in ticks:   # top down, skipping labels that would touch
        ty = y(t)
        d.line([(left, ty), (width - right, ty)], fill=(228, 228, 228))
        if ty - last_y >= 16:
            label = f"{t:.{digits}g}"
            d.text((left - 6 - d.textlength(label, font=small), ty - 7), label, fill=grey, font=small)
            last_y = ty
    for step in _step_ticks(n):
        tx = x(step)
        d.line([(tx, height - bottom), (tx, height - bottom + 4)], fill=(160, 160, 160))
        label = str(step)
        d.text((tx - d.textlength(label, font=small) / 2, height - bottom + 6), label, fill=grey, font=small)
    d.text((left + pw / 2 - 14, height - 20), "step", fill=ink, font=font)
    axis = Image.new("RGB", (110, 18), img.getpixel((0, 0)))
    ImageDraw.Draw(axis).text((0, 0), "loss (log scale)", fill=ink, font=font)
    img.paste(axis.rotate(90, expand=True), (4, int(top + ph / 2 - 55)))
    d.rectangle([left, top, width - right, height - bottom], outline=(160, 160, 160))
    d.line([(x(i + 1), y(v)) for i, v in enumerate(vals)], fill=(200, 212, 238), width=1)
    d.line([(x(i + 1), y(v)) for i, v in enumerate(smooth)], fill=blue, width=2)
    ex, ey = x(n), y(smooth[-1])
    d.ellipse([ex - 4, ey - 4, ex + 4, ey + 4], fill=blue)
    first = len(history) - n   # global step of vals[0] (history's non-positive entries are rare)
    if len(adv_on) > 1:
        start = len(adv) - len(adv_on)
        d.line([(x(start + i + 1), y(v)) for i, v in enumerate(smoothed_loss(adv_on))], fill=(230, 120, 30), width=2)
        d.text((left + pw - 190, top + 4), "adversarial part (size)", fill=(230, 120, 30), font=small)
    val = [(s_ - first, v) for s_, v in validation if 0 <= s_ - first <= n and math.isfinite(v)]
    if val:
        v_lo, v_hi = min(v for _, v in val), max(v for _, v in val)
        pts = [(x(s_), top + ph * (1 - (v - v_lo) / max(v_hi - v_lo, 1e-6))) for s_, v in val]
        if len(pts) > 1:
            d.line(pts, fill=(40, 150, 60), width=2)
        d.text((left + 6, top + 4), f"held-back works {val[-1][1]:.2f} dB (best {v_hi:.2f})", fill=(40, 150, 60),
               font=small)
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
