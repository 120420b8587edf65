"""A prior over an autoencoder's latents: new latents quilted from blocks of the works' latents.

Measured against multi-scale patch nearest-neighbour generation (GPNN, "Drop the GAN", Granot et al. 2022) in
latent space on 80 art thumbnails (bench/generation.py, bench/RESULTS.md): averaging overlapping nearest
patches blurs the latents, and the decoder turns the blur into an 8-pixel grid (1.95x the decoder's SWD
ceiling); taking each cell from a different patch makes a mosaic. What decodes into paintings is real,
contiguous latent blocks that agree where they meet (image quilting, Efros & Freeman 2001), laid out by the
quilting itself rather than after a guide:

- a sample is one work's blocks (5x5 cells) re-laid: placed in raster order, each picked at random among
  the blocks that fit the ones already placed nearly as well as the best (the temperature sets how nearly:
  0 takes the best, 1 any within a tenth of the way to an average block's misfit, 3 nearly any),
  so the picture keeps that work's palette and brushwork in an arrangement it does not have; a later pass
  re-fits every block to all its neighbours, which cleans the seams. Fitting blocks to a guide (a layout cut
  from other works) picked the blocks nearest the guide in colour, bland ones, and mixing several works'
  blocks in one picture mixed palettes no work has: both measured worse;
- the samples of a batch take their works from a shuffled deck of all the works (a large painting's finest
  scale counted as the many pictures it holds), so a batch shows as many different works as it can before any
  repeats: a batch with repeats is less varied than the works (64 of the training works themselves, drawn
  with repeats, scored 0.1x worse than 64 different ones);
- a sample that still came out close to a copy is drawn again from the next work, up to 8 times (the draw
  nearest to passing is kept): too close to a work as a whole (under 0.62x the works' median distance to each
  other), or half or more of it lying as it lay in a work (a shifted copy, which the distance does not see).

Pictures bigger than the works get such a composition at the works' size, then, doubled scale by scale, are
re-made with GPNN from the works' finest 3x3-cell patches, so a 1024 px sample from 96 px works is one
painted picture, not a tiling. Variations quilt too, on the work itself: a share ``strength`` of its block
places re-laid with its own blocks that fit the cells around them, so they stay as crisp as the work (GPNN
variations, the work mixed with noise and re-made coarse to fine, were blurred: 1.4-3.0x the SWD of the works'
reconstructions against 1.0x); masked variations re-lay only places that touch the mask and return the rest
exactly.
"""
import torch
import torch.nn.functional as F

from . import interrupt

PATCH = 3             # patch side in latent cells
MAX_PATCHES = 60_000  # per bank (a scale's patches, quilting's blocks): more are subsampled (seeded), bounding time
CHUNK_VALUES = 16 * 1024 * 1024   # 64 MB of distances at a time
# Memory of sampling or varying latents, in float32 copies of the latents made: GPNN at the final size holds the
# canvas's 3x3 patches, the patches picked for them and fold's weights at once (9 copies each), plus the canvas
# and the work it is mixed with (measured on the CPU: 36); a variation holds the work's BLOCK x BLOCK blocks (25
# copies), their cells' squared lengths and the canvas (measured: 41 for a 256x256-cell latent). Nodes check it
# against the memory budget up front.
WORKING_COPIES = 44


class Tally:
    """Work done out of a known total (latent cells visited), reported to ``report(done, total)`` as it goes: a
    progress bar for samples and variations of big pictures, which take minutes."""

    def __init__(self, total, report=None):
        self.done, self.total, self.report = 0, max(1, int(total)), report

    def __call__(self, cells):
        self.done = min(self.total, self.done + int(cells))
        if self.report is not None:
            self.report(self.done, self.total)


def windows(z, side, pad=0):
    """Every side x side window of z [B,C,H,W] (edges repeated ``pad`` cells first) as a view [B,H',W',C,side,side],
    made without copying: indexing it gathers only the windows wanted, reshaping all of it makes them all."""
    if pad:
        z = F.pad(z, (pad, pad, pad, pad), mode="replicate")
    return z.unfold(2, side, 1).unfold(3, side, 1).permute(0, 2, 3, 1, 4, 5)


def patches(z):
    """[B,C,h,w] -> [B*h*w, C*9]: the 3x3 neighbourhood of every cell (edges repeated)."""
    return windows(z, PATCH, PATCH // 2).reshape(-1, z.shape[1] * PATCH * PATCH)


def patch_rows(z, index):
    """patches(z)[index] without making them all: [len(index), C*9]."""
    h, w = z.shape[-2:]
    b, yx = index // (h * w), index % (h * w)
    return windows(z, PATCH, PATCH // 2)[b, yx // w, yx % w].reshape(len(index), -1)


def assemble(rows, shape):
    """Inverse of patches(): every cell the average of the patches that cover it."""
    b, _, h, w = shape
    r = PATCH // 2
    u = rows.reshape(b, h * w, -1).transpose(1, 2)
    size = (h + 2 * r, w + 2 * r)
    out = F.fold(u, size, PATCH) / F.fold(torch.ones_like(u), size, PATCH)
    return out[..., r:r + h, r:r + w]


def resize(z, size):
    if tuple(z.shape[-2:]) == tuple(size):
        return z
    shrink = size[0] < z.shape[-2]
    return F.interpolate(z, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def half(size):
    return max(1, -(-size[0] // 2)), max(1, -(-size[1] // 2))


BLOCK, OVERLAP = 5, 2  # quilting: block side and overlap, in latent cells
TOLERANCE = 0.1        # blocks whose misfit is within this times temperature^2 of the way from the best to the average
MAX_SHARE = 16         # a source's entries in the deck of sources
TRIES = 8              # draws of a sample that came out too close to a work
COPY_RATIO = 0.62      # "too close": under this fraction of the works' median distance to each other,
COPY_SHARE = 0.5       # or over this share of the cells lying as they lay in one work (two blocks' share at least)


def block_rows(view, block, generator):
    """Every block x block window of a view [C,h,w] as rows [N, C*block*block] (F.unfold's order), and where each
    starts [N,2]; over MAX_PATCHES windows, a seeded subset, gathered without unfolding them all first."""
    every = windows(view[None], block)[0]   # [h',w',C,block,block]
    n = every.shape[0] * every.shape[1]
    keep = torch.randperm(n, generator=generator)[:MAX_PATCHES] if n > MAX_PATCHES else torch.arange(n)
    at = torch.stack([keep // every.shape[1], keep % every.shape[1]], 1)
    return every[at[:, 0], at[:, 1]].reshape(len(keep), -1), at


def region(view, size, generator):
    """A random window of ``view`` [C,H,W] of ``size`` (all of a smaller view): one picture's worth of material."""
    h, w = min(view.shape[-2], size[0]), min(view.shape[-1], size[1])
    y, x = (int(torch.randint(n - m + 1, (), generator=generator)) for n, m in zip(view.shape[-2:], (h, w)))
    return view[:, y:y + h, x:x + w]


def _deck(shares, generator):
    """Source i shares[i] times, shuffled, again and again: a batch's samples repeat no source more often than
    its share until all have come, so a batch shows as many works as it can."""
    entries = torch.repeat_interleave(torch.arange(len(shares)), torch.tensor(shares))
    while True:
        yield from entries[torch.randperm(len(entries), generator=generator)].tolist()


def starts(n, block, step):
    s = list(range(0, n - block + 1, step))
    return s if s[-1] == n - block else s + [n - block]


def places(h, w, block):
    """Where quilting puts blocks on an h x w canvas: every block - OVERLAP cells, the last flush with the edge."""
    step = block - min(OVERLAP, block - 1)
    return [(y, x) for y in starts(h, block, step) for x in starts(w, block, step)]


def quilt(rows, at, canvas, filled, spots, generator, passes, tolerance, own=False, tally=None):
    """Blocks of the bank (rows [N, C*block*block] starting at ``at`` [N,2] in their view) laid on a copy of
    ``canvas`` [b,C,h,w] at ``spots``, in order: each picked at random among those whose squared misfit to the
    cells around it already there (``filled`` [h,w], 1 = there) is within ``tolerance`` of the way from the
    best's to the average's (the first block of an empty canvas: any); passes after the first fit each block
    to the cells its neighbours overlap. ``own``: the bank is the canvas's own work, whose block at its own
    place is no change and never picked. ``tally`` counts the cells of each block laid. Returns the latents and
    [b]: the largest share of each one's cells copied from one place of the view (blocks that lie as they lay
    there)."""
    b, c, h, w = canvas.shape
    block = round((rows.shape[1] // c) ** 0.5)
    overlap = min(OVERLAP, block - 1)
    canvas, filled = canvas.clone(), filled.clone()
    shift = torch.zeros(b, h, w, 2, dtype=torch.long)   # per cell: where its block lay in the view, relative to here
    # [N, block*block]: each cell's squared length, summed in place a channel at a time (squaring all the rows at
    # once would hold another copy of them)
    per_channel = rows.reshape(len(rows), c, -1).unbind(1)
    sq = per_channel[0].pow(2)
    for r in per_channel[1:]:
        sq.addcmul_(r, r)
    ring = torch.ones(block, block)   # later passes fit a block to its neighbours: the cells they overlap
    ring[overlap:block - overlap, overlap:block - overlap] = 0
    for p in range(passes):
        for y, x in spots:
            interrupt.check()   # a spot takes milliseconds; a variation of a big latent, minutes (Cancel)
            win = (slice(None), slice(None), slice(y, y + block), slice(x, x + block))
            cells = (filled[win[2:]] if p == 0 else ring).reshape(-1)
            known = cells.expand(c, -1).reshape(-1)
            here = canvas[win].reshape(b, -1)
            cost = (sq @ cells)[None] - 2 * (here * known) @ rows.T + (here * here * known).sum(1, keepdim=True)
            same = (at == torch.tensor([y, x])).all(1) if own else torch.zeros(len(rows), dtype=torch.bool)
            best = cost.masked_fill(same, float("inf")).min(1, keepdim=True).values
            near = (cost <= best + tolerance * (cost.mean(1, keepdim=True) - best) + 1e-6) & ~same
            k = (torch.rand(cost.shape, generator=generator) * near).argmax(1)
            pick = rows[k].reshape(b, c, block, block)
            if p == 0:   # the first pass averages the overlap with what is already there
                pick = torch.where(filled[win[2:]].bool(), 0.5 * (pick + canvas[win]), pick)
            canvas[win] = pick
            filled[win[2:]] = 1
            shift[:, y:y + block, x:x + block] = (at[k] - torch.tensor([y, x]))[:, None, None]
            if tally is not None:
                tally(block * block)
    copied = torch.stack([torch.unique(s.reshape(-1, 2), dim=0, return_counts=True)[1].max() for s in shift])
    return canvas, copied / (h * w)


class PatchBank:
    """One scale of the prior: sharp patches (what is pasted) and the same patches blurred by a halving
    and doubling (what an upsampled canvas is compared with)."""

    def __init__(self, latents, generator):
        # The rows (and order) of all the works' patches concatenated and subsampled, gathered a tensor at a time:
        # making all the patches first held ~28 copies of the prior's latents (7 GB for a full prior).
        counts = [z.shape[0] * z.shape[-2] * z.shape[-1] for z in latents]
        keep = torch.randperm(sum(counts), generator=generator)[:MAX_PATCHES] if sum(counts) > MAX_PATCHES \
            else torch.arange(sum(counts))
        width = latents[0].shape[1] * PATCH * PATCH
        self.sharp, self.blurry = torch.empty(len(keep), width), torch.empty(len(keep), width)
        start = 0
        for z, count in zip(latents, counts):
            sel = ((keep >= start) & (keep < start + count)).nonzero().squeeze(1)
            if len(sel):
                self.sharp[sel] = patch_rows(z, keep[sel] - start)
                self.blurry[sel] = patch_rows(resize(resize(z, half(z.shape[-2:])), z.shape[-2:]), keep[sel] - start)
            start += count
            interrupt.check()

    def nearest(self, queries, keys, tally=None):
        norms = (keys * keys).sum(1)
        chunk = max(64, CHUNK_VALUES // len(keys))   # the distance matrix stays within CHUNK_VALUES floats
        out = []
        for q in queries.split(chunk):
            out.append((norms - 2 * q @ keys.T).argmin(1))
            interrupt.check()
            if tally is not None:
                tally(len(q))
        return torch.cat(out)

    def remake(self, canvas, passes, blurry_first=True, tally=None):
        for i in range(passes):
            keys = self.blurry if i == 0 and blurry_first else self.sharp
            canvas = assemble(self.sharp[self.nearest(patches(canvas), keys, tally)], canvas.shape)
        return canvas


class LatentPrior:
    """The works' latents (a list of [N,C,h,w] tensors: each work's latent at a few scales, and mirrored) and
    how many passes (quilting, patch matching) a sample gets. What sampling needs is made when first needed."""

    def __init__(self, latents, crop, passes=2):
        self.latents = [z.float().cpu() for z in latents]
        self.channels = self.latents[0].shape[1]
        self.crop, self.passes = int(crop), int(passes)
        # What a sample is quilted from: each work at each scale, with its mirror image when it has one (the
        # trainer stores latents as pairs of tensors, a view and its mirror), drawn as one so a batch repeats none.
        pairs = [self.latents[i:i + 2] for i in range(0, len(self.latents), 2)]
        self.sources = [[z[k] for z in pair if k < len(z)] for pair in pairs for k in range(max(map(len, pair)))]
        self.block = min(BLOCK, *(min(z.shape[-2:]) for z in self.latents))
        self._bank = None
        self._fitted = False
        self.summary = {}

    def config(self):
        return {"crop": self.crop, "passes": self.passes}

    def clone(self):
        out = LatentPrior(self.latents, self.crop, self.passes)
        out.summary = dict(self.summary)
        return out

    def fit(self):
        """For the copy check: the works at the composition size and the median distance between a work and its
        nearest other work."""
        if self._fitted:
            return self
        self.refs = [resize(z, self._check_size(z.shape[-2:])).flatten(1) for z in self.latents]
        nearest = [_nearest_other(r) for r in self.refs if len(r) > 1]   # a tensor's rows are different works
        self.copy_limit = COPY_RATIO * float(torch.cat(nearest).median()) if nearest else 0.0
        self._fitted = True
        return self

    def bank(self):
        """GPNN's patch bank of the works' finest 3x3-cell patches (enlargements)."""
        if self._bank is None:
            self._bank = PatchBank(self.latents, torch.Generator().manual_seed(0))
        return self._bank

    def stage_sizes(self, h, w):
        """Canvas sizes from the composition's up to (h, w): (h, w) halved while its longer side is over 1.5x the
        works' (crop) size."""
        sizes = [(h, w)]
        while max(sizes[-1]) > 1.5 * self.crop and min(sizes[-1]) >= 2:
            sizes.append(half(sizes[-1]))
        return sizes[::-1]

    def _check_size(self, size):
        """``size`` shrunk to the composition size (crop) on its longer side."""
        scale = min(1.0, self.crop / max(size))
        return tuple(max(1, round(s * scale)) for s in size)

    def _distance_to_works(self, z):
        """RMS distance of the latent z [1,C,h,w] to its nearest work (each compared at the copy check's size)."""
        return min(float(_rms(torch.cdist(resize(z, self._check_size(z0.shape[-2:])).flatten(1), ref), ref).min())
                   for z0, ref in zip(self.latents, self.refs))

    def _shares(self, size):
        """How often each source comes in a deck: as many pictures of ``size`` as it holds (a painting's finest
        scale more than its coarser ones; at most MAX_SHARE), at least 1."""
        return [min(MAX_SHARE, max(1, v[0].shape[-2] * v[0].shape[-1] // (size[0] * size[1])))
                for v in self.sources]

    def composition(self, size, generator, temperature, passes, deck):
        """One new latent [1,C,h,w] at about the works' size: the blocks of the next work in the deck re-laid; drawn
        again from the next work while it is too near a copy, keeping the draw nearest to passing."""
        best, nearest = None, None
        block = min(self.block, *size)
        # A small canvas is mostly one block: the share check asks only that no two lie as in the work.
        share = max(COPY_SHARE, 2 * block * block / (size[0] * size[1]))
        for _ in range(TRIES):
            views = self.sources[next(deck)]
            view = region(views[int(torch.randint(len(views), (), generator=generator))], size, generator)
            rows, at = block_rows(view, block, generator)
            z, copied = quilt(rows, at, torch.zeros((1, self.channels) + tuple(size)), torch.zeros(size),
                              places(*size, block), generator, passes, TOLERANCE * temperature ** 2)
            # How near a copy: first whether the whole is too close to a work, then the share that lies as in one.
            near = (max(1.0, self.copy_limit / max(self._distance_to_works(z), 1e-12)), float(copied) / share)
            if best is None or near < nearest:
                best, nearest = z, near
            if max(nearest) <= 1:
                break
        return best

    @torch.no_grad()
    def sample(self, shape, generator, temperature=1.0, passes=None, report=None):
        """New latents [B,C,h,w]: compositions at the works' size, enlarged by GPNN to bigger sizes; progress to
        ``report(done, total)``."""
        b, _, h, w = shape
        passes = int(passes or self.passes)
        sizes = self.stage_sizes(h, w)
        tally = Tally(b * passes * sum(hs * ws for hs, ws in sizes), report)
        self.fit()
        deck = _deck(self._shares(sizes[0]), generator)
        x = []
        for _ in range(b):
            x.append(self.composition(sizes[0], generator, temperature, passes, deck))
            tally(passes * sizes[0][0] * sizes[0][1])
        x = torch.cat(x)
        for size in sizes[1:]:
            x = self.bank().remake(resize(x, size), passes, tally=tally)
        return x

    @torch.no_grad()
    def vary(self, z, strength, generator, passes=None, mask=None, temperature=1.0, report=None):
        """Variations of latents z [B,C,h,w] (strength 0 returns z itself): a share ``strength`` of each one's block
        places, drawn at random, re-laid with its own blocks that fit the cells around them (quilting, as samples
        are made, but on the work), so a variation stays as crisp as the work; with ``mask`` ([B|1,1,h,w], 1 =
        change) only places that touch the mask, and z returned bit for bit where the mask is 0; progress to
        ``report(done, total)``."""
        if strength <= 0:
            return z.clone()
        passes = int(passes or self.passes)
        h, w = z.shape[-2:]
        block = min(self.block, h, w)
        inner = slice(min(OVERLAP, block - 1), block - min(OVERLAP, block - 1))
        chosen, every = [], places(h, w, block)
        for i in range(len(z)):
            spots = every
            if mask is not None:
                m = mask[min(i, len(mask) - 1), 0]
                spots = [(y, x) for y, x in spots if m[y:y + block, x:x + block].any()]
            keep = torch.randperm(len(spots), generator=generator)[:max(1, round(float(strength) * len(spots)))]
            chosen.append([spots[j] for j in sorted(keep.tolist())])
        tally = Tally(passes * block * block * sum(map(len, chosen)), report)
        out = []
        for i, spots in enumerate(chosen):
            work = z[i:i + 1].float()
            filled = torch.ones(h, w)   # the work is there, but for the middles of the places re-laid
            for y, x in spots:
                filled[y:y + block, x:x + block][inner, inner] = 0
            rows, at = block_rows(work[0], block, generator)
            out.append(quilt(rows, at, work, filled, spots, generator, passes, TOLERANCE * temperature ** 2,
                             own=True, tally=tally)[0])
        out = torch.cat(out).to(z.dtype)
        return out if mask is None else torch.lerp(z, out, mask.to(z.dtype))   # exact where the mask is 0


NEAREST_ROWS = 4096   # works whose nearest other work the copy check measures (a seeded subset of more)


def _nearest_other(r):
    """RMS distance of each of (up to NEAREST_ROWS of) the rows of r to its nearest other row, within CHUNK_VALUES
    distances at a time: cdist of all against all held len(r)^2 floats (160 GB for a file of 200k tiny works)."""
    rows = torch.arange(len(r))
    if len(r) > NEAREST_ROWS:
        rows = torch.randperm(len(r), generator=torch.Generator().manual_seed(0))[:NEAREST_ROWS]
    out = []
    for part in rows.split(max(1, CHUNK_VALUES // len(r))):
        d = torch.cdist(r[part], r)
        d[torch.arange(len(part)), part] = float("inf")
        out.append(_rms(d, r).min(1).values)
        interrupt.check()
    return torch.cat(out)


def _rms(distances, x):
    """Euclidean distances between flattened latents as RMS per value."""
    return distances / x.shape[1] ** 0.5
