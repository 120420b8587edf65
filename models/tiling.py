"""Running a conv model over big images: passes sized to a memory budget, and tiles with blended overlaps.

A whole 4096x4096 painting needs gigabytes of activations in one pass, so images too big for
``MEMORY_BUDGET`` are cut into tiles on the latent grid. Each tile is computed with a margin of
context as wide as the network's receptive field (its ``context_cells()``), so the kept part of a tile
equals what the whole-image pass gives; neighbouring tiles then cross-fade over ``BLEND`` cells on
each side of their border, so a model deeper than the context cap still leaves no visible seam.
"""
import math

import torch
import torch.nn as nn

from . import interrupt

MEMORY_BUDGET = 384 << 20  # bytes of activations one forward pass may hold
ACTIVATIONS_LIVE = 3.5     # widest feature map's copies alive at once (measured: 3.3 at 2048x2048)
BLEND = 2                  # latent cells of linear cross-fade on each side of a tile border
MAX_CONTEXT = 16           # latent cells of context at most; beyond it deep models get the blend only


def bytes_per_pixel(net, dtype=None):
    """Activation bytes per image pixel of a whole-image pass (the widest map runs at 1/2 scale)."""
    itemsize = 2 if dtype in (torch.bfloat16, torch.float16) else 4
    if net.fixed_size:  # dense: a few small vectors per image
        return itemsize
    first = next(m for m in net.encoder.modules() if isinstance(m, nn.Conv2d))
    stem = 4 if isinstance(net.encoder[0], nn.PixelUnshuffle) else 1
    return ACTIVATIONS_LIVE * first.out_channels * itemsize / stem


def _spans(n, tile):
    """[start, end) cells of about equal tiles of at most ``tile`` cells covering 0..n."""
    k = -(-n // tile)
    edges = [round(i * n / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _ramp(lo, hi, start, end, n, cell, blend):
    """Weights of output pixels [lo*cell, hi*cell) of the tile whose core is cells [start, end):
    1 inside, a linear fade over the 2*blend cells around each inner border. A neighbour's fade
    is the complement, so the weights of overlapping tiles sum to exactly 1."""
    p = torch.arange(lo * cell, hi * cell, dtype=torch.float64) + 0.5
    band = 2 * blend * cell
    w = torch.ones_like(p)
    if band and start > 0:
        w = torch.minimum(w, ((p - (start - blend) * cell) / band).clamp(0, 1))
    if band and end < n:
        w = torch.minimum(w, (((end + blend) * cell - p) / band).clamp(0, 1))
    return w.float()


def phase(progress, index, count):
    """The progress callback for phase ``index`` of ``count`` alike phases of one job (encode, then decode;
    a restore's passes), so one bar fills once across them; None stays None."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, count * total)


def _ticker(progress, total):
    """A callable to call after each piece of work (a tile or a batch); reports ``progress(done, total)``."""
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)
    return tick


def tiled(fn, x, cell_in, cell_out, tile, context, blend=BLEND, on_tile=None):
    """Apply ``fn`` (one model half) to ``x`` [B,C,H,W] in tiles of ``tile`` latent cells, each with
    ``context`` cells of input around it and ``blend`` cells of cross-fade; returns the blended float32 result on
    the CPU. ``on_tile()`` is called after each tile.

    ``cell_in`` / ``cell_out``: pixels per latent cell on the input / output side (f and 1 to
    encode, 1 and f to decode)."""
    gh, gw = x.shape[-2] // cell_in, x.shape[-1] // cell_in
    blend = min(blend, context)   # a tile can only fade over cells it computed
    out = None
    for y0, y1 in _spans(gh, tile):
        ky0, ky1, cy0, cy1 = max(0, y0 - blend), min(gh, y1 + blend), max(0, y0 - context), min(gh, y1 + context)
        wy = _ramp(ky0, ky1, y0, y1, gh, cell_out, blend)
        for x0, x1 in _spans(gw, tile):
            kx0, kx1 = max(0, x0 - blend), min(gw, x1 + blend)
            cx0, cx1 = max(0, x0 - context), min(gw, x1 + context)
            interrupt.check()
            y = fn(x[..., cy0 * cell_in:cy1 * cell_in, cx0 * cell_in:cx1 * cell_in])
            y = y[..., (ky0 - cy0) * cell_out:(ky1 - cy0) * cell_out,
                  (kx0 - cx0) * cell_out:(kx1 - cx0) * cell_out].float().cpu()
            if out is None:
                out = torch.zeros(x.shape[0], y.shape[1], gh * cell_out, gw * cell_out)
            w = wy[:, None] * _ramp(kx0, kx1, x0, x1, gw, cell_out, blend)[None, :]
            out[..., ky0 * cell_out:ky1 * cell_out, kx0 * cell_out:kx1 * cell_out].addcmul_(y, w)
            if on_tile is not None:
                on_tile()
    return out


def _tile_cells(net, dtype, context, budget):
    """The largest tile (in latent cells) whose pass, context included, fits the budget."""
    side = math.sqrt(budget / bytes_per_pixel(net, dtype)) / net.downscale
    return max(int(side) - 2 * context, 2 * context, 4 * BLEND)


def _nhwc(x, device):
    """On the device in channels_last, the layout oneDNN and cuDNN run fastest (and fused.py needs)."""
    return x.to(device).contiguous(memory_format=torch.channels_last)


def _joined(parts):
    """torch.cat, without its copy (and change of layout) for a single part."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _run(fn, x, *, net, device, dtype, budget, pixels_per_item, cell_in, cell_out, half, progress=None):
    """Whole passes of ``fn`` over as many items of ``x`` as fit the budget, or tiles when one item alone does not.
    ``half`` is 0 for the encoder, 1 for the decoder (which context_cells() entry applies); ``progress(done,
    total)`` after each pass or tile."""
    budget = budget or MEMORY_BUDGET
    per_item = bytes_per_pixel(net, dtype) * pixels_per_item
    with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
        if per_item > budget:
            context = min(net.context_cells()[half], MAX_CONTEXT) + BLEND
            tile = _tile_cells(net, dtype, context, budget)
            grid = [len(_spans(side // cell_in, tile)) for side in x.shape[-2:]]
            tick = _ticker(progress, x.shape[0] * grid[0] * grid[1])
            return _joined([tiled(fn, _nhwc(x[i:i + 1], device), cell_in, cell_out, tile, context, on_tile=tick)
                            for i in range(x.shape[0])])
        n = max(1, int(budget // per_item))
        tick, parts = _ticker(progress, -(-x.shape[0] // n)), []
        for i in range(0, x.shape[0], n):
            interrupt.check()
            parts.append(fn(_nhwc(x[i:i + n], device)).float().cpu())
            tick()
        return _joined(parts)


@torch.no_grad()
def encode(net, x, device="cpu", dtype=None, budget=None, progress=None):
    """Images [B,3,H,W] (H, W divisible by the downscale) -> latents, float32 on the CPU."""
    return _run(net.encode, x, net=net, device=device, dtype=dtype, budget=budget, progress=progress,
                pixels_per_item=x.shape[-2] * x.shape[-1], cell_in=net.downscale, cell_out=1, half=0)


@torch.no_grad()
def decode(net, z, device="cpu", dtype=None, budget=None, progress=None):
    """Latents [B,C,h,w] -> images [B,3,h*f,w*f] in 0..1, float32 on the CPU."""
    f = net.downscale
    pixels = net.image_size ** 2 if net.fixed_size else z.shape[-2] * z.shape[-1] * f ** 2
    return _run(lambda t: net.decode(t.float()), z, net=net, device=device, dtype=dtype, budget=budget,
                progress=progress, pixels_per_item=pixels, cell_in=1, cell_out=f, half=1)
