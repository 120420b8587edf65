"""A prior over an autoencoder's latents: new latents quilted from blocks of the works' latents.

Measured against multi-scale patch nearest-neighbour generation (GPNN, "Drop the GAN", Granot et al. 2022) in
latent space on 80 art thumbnails (bench/generation.py, bench/RESULTS.md): averaging overlapping nearest
patches blurs the latents, and the decoder turns the blur into an 8-pixel grid (1.95x the decoder's SWD
ceiling); taking each cell from a different patch makes a mosaic. What decodes into paintings is real,
contiguous latent blocks that agree where they meet (image quilting, Efros & Freeman 2001; 1.11x), laid out
after a composition no work has:

- the composition (the guide) is a random, mirrored, zoomed-in crop of one work cut into another's along a
  random soft-edged line (blended halfway, two layouts grey each other's colours); the temperature sets the
  second work's share (none at 0, half at 1) and mixes in noise, more as it rises;
- the blocks (6x6 cells) come from two *other* works, so no work is copied: a new picture has the layout of
  two works and the brushwork and palette of others;
- blocks are placed in raster order, each picked at random among those within the tolerance of the best fit
  to the guide and to the blocks already placed (overlaps averaged); later passes re-fit every block to all
  its neighbours, which cleans the seams;
- a sample that still came out close to a work (under 0.62x the works' median distance to each other) is
  drawn again, up to 4 times (the farthest draw is kept): bland samples near the set's most average work
  otherwise pull the novelty figure down.

Pictures bigger than the works get such a composition at the works' size, then, doubled scale by scale, are
re-made with GPNN from the works' finest 3x3-cell patches, so a 1024 px sample from 96 px works is one
painted picture, not a tiling. Variations also use GPNN (quilting's big blocks cannot follow a given work):
the work mixed with noise by ``strength``, re-made coarse to fine; masked variations put the unmasked part
back at every scale and return it exactly.
"""
import math

import torch
import torch.nn.functional as F

PATCH = 3             # patch side in latent cells
MAX_PATCHES = 60_000  # per bank (a scale's patches, quilting's blocks): more are subsampled (seeded), bounding time
CHUNK_VALUES = 16 * 1024 * 1024   # 64 MB of distances at a time
# Memory of sampling or varying latents, in float32 copies of the latents made: GPNN at the final size holds the
# canvas's 3x3 patches, the patches picked for them and fold's weights at once (9 copies each), plus the canvas
# and the work it is mixed with (measured on the CPU: 36). Nodes check it against the memory budget up front.
WORKING_COPIES = 40


def patches(z):
    """[B,C,h,w] -> [B*h*w, C*9]: the 3x3 neighbourhood of every cell (edges repeated)."""
    r = PATCH // 2
    u = F.unfold(F.pad(z, (r, r, r, r), mode="replicate"), PATCH)
    return u.transpose(1, 2).reshape(-1, u.shape[1])


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


BLOCK, OVERLAP = 6, 2  # quilting: block side and overlap, in latent cells
LAYOUT_WORKS, BLOCK_WORKS = 2, 2   # works cut into a composition; works whose blocks paint it
LAYOUT_EDGE = 30       # steepness of the cut between the layout works (4, a halfway blend, scored 0.04-0.10x worse)
LAYOUT_NOISE = 0.05    # the composition's share of noise at temperature 1, growing as its cube (1 from about 2.7)
TRIES = 4              # draws of a sample that came out too close to a work
COPY_RATIO = 0.62      # "too close": under this fraction of the works' median distance to each other


def block_rows(views, block, generator):
    """Every block x block window of the views ([C,h,w] each) as rows [N, C*block*block]."""
    rows = torch.cat([F.unfold(v[None], block)[0].T for v in views if min(v.shape[-2:]) >= block])
    if len(rows) > MAX_PATCHES:
        rows = rows[torch.randperm(len(rows), generator=generator)[:MAX_PATCHES]]
    return rows


def starts(n, block, step):
    s = list(range(0, n - block + 1, step))
    return s if s[-1] == n - block else s + [n - block]


def quilt(guide, rows, generator, passes, tolerance, block):
    """[b,C,h,w] latents made of the bank's blocks (rows [N, C*block*block]), each picked at random among those
    whose squared error against the guide and the blocks around it is within ``tolerance`` of the best's."""
    b, c, h, w = guide.shape
    overlap = min(OVERLAP, block - 1)
    canvas, filled = torch.zeros_like(guide), torch.zeros(h, w)
    sq = rows * rows
    norms = sq.sum(1)
    ring = torch.ones(block, block)   # later passes fit a block to its neighbours: the cells they overlap
    ring[overlap:block - overlap, overlap:block - overlap] = 0
    for p in range(passes):
        for y in starts(h, block, block - overlap):
            for x in starts(w, block, block - overlap):
                win = (slice(None), slice(None), slice(y, y + block), slice(x, x + block))
                known = (filled[win[2:]] if p == 0 else ring).expand(c, -1, -1).reshape(-1)
                here, fit = canvas[win].reshape(b, -1), guide[win].reshape(b, -1)
                cost = ((sq @ known + norms)[None] - 2 * (here * known + fit) @ rows.T
                        + (here * here * known).sum(1, keepdim=True) + (fit * fit).sum(1, keepdim=True))
                near = cost <= (1 + tolerance) * cost.min(1, keepdim=True).values + 1e-6
                pick = rows[(torch.rand(cost.shape, generator=generator) * near).argmax(1)].reshape(b, c, block, block)
                if p == 0:   # the first pass averages the overlap with what is already there
                    pick = torch.where(filled[win[2:]].bool(), 0.5 * (pick + canvas[win]), pick)
                canvas[win] = pick
                filled[win[2:]] = 1
    return canvas


def zoomed_crop(view, size, generator, smallest=0.6):
    """A random window of ``view`` [C,H,W] with the aspect of ``size``, 60-100% of the largest that fits,
    maybe mirrored, resized to ``size``: a layout that is no work's own."""
    H, W = view.shape[-2:]
    fit = min(H / size[0], W / size[1], 1.0) * (smallest + (1 - smallest) * float(torch.rand((), generator=generator)))
    ch, cw = max(1, round(size[0] * fit)), max(1, round(size[1] * fit))
    y, x = (int(torch.randint(n + 1, (), generator=generator)) for n in (H - ch, W - cw))
    crop = view[None, :, y:y + ch, x:x + cw]
    return resize(crop.flip(-1) if torch.rand((), generator=generator) < 0.5 else crop, size)


class PatchBank:
    """One scale of the prior: sharp patches (what is pasted) and the same patches blurred by a halving
    and doubling (what an upsampled canvas is compared with)."""

    def __init__(self, latents, generator):
        blurry = [resize(resize(z, half(z.shape[-2:])), z.shape[-2:]) for z in latents]
        self.sharp = torch.cat([patches(z) for z in latents])
        self.blurry = torch.cat([patches(z) for z in blurry])
        if len(self.sharp) > MAX_PATCHES:
            keep = torch.randperm(len(self.sharp), generator=generator)[:MAX_PATCHES]
            self.sharp, self.blurry = self.sharp[keep], self.blurry[keep]

    def nearest(self, queries, keys):
        norms = (keys * keys).sum(1)
        chunk = max(64, CHUNK_VALUES // len(keys))   # the distance matrix stays within CHUNK_VALUES floats
        return torch.cat([(norms - 2 * q @ keys.T).argmin(1) for q in queries.split(chunk)])

    def remake(self, canvas, passes, blurry_first=True):
        for i in range(passes):
            keys = self.blurry if i == 0 and blurry_first else self.sharp
            canvas = assemble(self.sharp[self.nearest(patches(canvas), keys)], canvas.shape)
        return canvas


class LatentPrior:
    """The works' latents (a list of [N,C,h,w] tensors: each work's latent at a few scales, and mirrored) and
    how many passes (quilting, patch matching) a sample gets. What sampling needs is made when first needed."""

    def __init__(self, latents, crop, passes=2):
        self.latents = [z.float().cpu() for z in latents]
        self.channels = self.latents[0].shape[1]
        self.crop, self.passes = int(crop), int(passes)
        self.views = [v for z in self.latents for v in z]   # every work at every scale, mirrored too
        self.block = min(BLOCK, *(min(z.shape[-2:]) for z in self.latents))
        self._banks = None
        self._fitted = False
        self.summary = {}

    def config(self):
        return {"crop": self.crop, "passes": self.passes}

    def clone(self):
        out = LatentPrior(self.latents, self.crop, self.passes)
        out.summary = dict(self.summary)
        return out

    @property
    def levels(self):
        """Scales of the composition: the crop size halved while the coarsest keeps 2 cells or more."""
        return 1 + max(0, int(math.log2(max(1, self.crop / 2))))

    def fit(self):
        """The noise's mean and channel covariance (colours that go together), and for the copy check the works at
        the composition size and the median distance between a work and its nearest other work."""
        if self._fitted:
            return self
        v = torch.cat([z.movedim(1, -1).reshape(-1, self.channels) for z in self.latents]).double()
        # One cell gives no covariance (NaN) and flat works a zero one: the jitter's floor keeps it factorable.
        cov = torch.cov(v.T).reshape(self.channels, self.channels).nan_to_num(0.0)
        jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-6)
        self.mean = v.mean(0).float()
        self.chol = torch.linalg.cholesky(cov + jitter * torch.eye(self.channels, dtype=torch.float64)).float()
        self.refs = [resize(z, self._check_size(z.shape[-2:])).flatten(1) for z in self.latents]
        nearest = [_rms(torch.cdist(r, r).fill_diagonal_(float("inf")), r).min(1).values
                   for r in self.refs if len(r) > 1]   # the rows of one tensor are different works
        self.copy_limit = COPY_RATIO * float(torch.cat(nearest).median()) if nearest else 0.0
        self._fitted = True
        return self

    def banks(self):
        """GPNN's patch banks, one per composition scale (enlargements and variations)."""
        if self._banks is None:
            g = torch.Generator().manual_seed(0)
            self._banks = [PatchBank([resize(z, (max(1, z.shape[-2] >> level), max(1, z.shape[-1] >> level)))
                                      for z in self.latents], g) for level in range(self.levels)]
        return self._banks

    def stage_sizes(self, h, w):
        """Canvas sizes from the coarsest composition scale up to (h, w): halvings of the target size while its
        longer side is over 1.5x the works' (crop) size, then the composition's own scales below that."""
        sizes = [(h, w)]
        while max(sizes[-1]) > 1.5 * self.crop and min(sizes[-1]) >= 2:
            sizes.append(half(sizes[-1]))
        composition = len(sizes) - 1
        for _ in range(self.levels - 1):
            sizes.append(half(sizes[-1]))
        return sizes[::-1], composition

    def _bank_of(self, i, n, composition):
        """The bank for stage i of n: the composition's own scales, then the finest for every enlargement."""
        from_top = n - 1 - i
        return self.banks()[max(0, from_top - composition)]

    def _check_size(self, size):
        """``size`` shrunk to the composition size (crop) on its longer side."""
        scale = min(1.0, self.crop / max(size))
        return tuple(max(1, round(s * scale)) for s in size)

    def _distance_to_works(self, z):
        """RMS distance of the latent z [1,C,h,w] to its nearest work (each compared at the copy check's size)."""
        return min(float(_rms(torch.cdist(resize(z, self._check_size(z0.shape[-2:])).flatten(1), ref), ref).min())
                   for z0, ref in zip(self.latents, self.refs))

    def layout(self, size, generator, temperature):
        """A new composition [1,C,h,w] (zoomed crops of two works cut together along a soft-edged random line, the
        second's share and the noise set by the temperature), and the order of the other works."""
        order = torch.randperm(len(self.views), generator=generator)
        out = None
        cut = 1.0 - 0.5 * min(1.0, temperature)   # the second work's share: none at 0 (one work re-painted), half at 1
        for i in order[:LAYOUT_WORKS].tolist():
            crop = zoomed_crop(self.views[i], size, generator)
            mask = F.interpolate(torch.rand((1, 1, 2, 2), generator=generator), size=size, mode="bicubic",
                                 align_corners=False)
            out = crop if out is None else torch.lerp(out, crop, ((mask - cut) * LAYOUT_EDGE).sigmoid())
        # Noise with the works' colours at temperature times their spread: a hotter composition strays further.
        noise = (self.mean + temperature * torch.randn((1, 2, 2, self.channels), generator=generator) @ self.chol.T)
        noise = noise.movedim(-1, 1)
        rest = order[LAYOUT_WORKS:] if len(order) > LAYOUT_WORKS else order
        return torch.lerp(out, resize(noise, size), min(1.0, LAYOUT_NOISE * temperature ** 3)), rest

    def composition(self, size, generator, temperature, passes):
        """One new latent [1,C,h,w] at about the works' size: a layout from some works, quilted from others'; drawn
        again while it is too close to a work, keeping the farthest draw."""
        best, far = None, -1.0
        for _ in range(TRIES):
            guide, rest = self.layout(self._check_size(size), generator, temperature)
            block = min(self.block, *size)
            rows = block_rows([self.views[i] for i in rest[:BLOCK_WORKS].tolist()], block, generator)
            z = quilt(resize(guide, size), rows, generator, passes, 0.1 * temperature, block)
            d = self._distance_to_works(z)
            if d > far:
                best, far = z, d
            if far >= self.copy_limit:
                break
        return best

    @torch.no_grad()
    def sample(self, shape, generator, temperature=1.0, passes=None):
        """New latents [B,C,h,w]: compositions at the works' size, enlarged by GPNN to bigger sizes."""
        b, _, h, w = shape
        passes = int(passes or self.passes)
        sizes, first = self.stage_sizes(h, w)
        first = len(sizes) - 1 - first   # the composition's own (largest) scale
        self.fit()
        x = torch.cat([self.composition(sizes[first], generator, temperature, passes) for _ in range(b)])
        for size in sizes[first + 1:]:
            x = self.banks()[0].remake(resize(x, size), passes)
        return x

    @torch.no_grad()
    def vary(self, z, strength, generator, passes=None, mask=None, temperature=1.0):
        """Variations of latents z [B,C,h,w] (strength 0 returns z itself): from the coarsest scale up, z mixed
        with noise by ``strength`` and re-made by GPNN; with ``mask`` ([B|1,1,h,w], 1 = change) z is put back
        outside the mask at every scale and returned there bit for bit."""
        if strength <= 0:
            return z.clone()
        work, strength = z.float(), float(strength)
        sizes, composition = self.stage_sizes(*z.shape[-2:])
        passes = int(passes or self.passes)
        self.fit()
        noise = torch.randn((len(z), self.channels) + tuple(sizes[0]), generator=generator)
        x = (self.mean + temperature * noise.movedim(1, -1) @ self.chol.T).movedim(-1, 1)
        for i, size in enumerate(sizes):
            x = torch.lerp(resize(work, size), resize(x, size), strength)
            x = self._bank_of(i, len(sizes), composition).remake(x, passes)
            if mask is not None:
                x = torch.lerp(resize(work, size), x, resize(mask, size))
        out = x.to(z.dtype)
        return out if mask is None else torch.lerp(z, out, mask.to(z.dtype))   # exact where the mask is 0


def _rms(distances, x):
    """Euclidean distances between flattened latents as RMS per value."""
    return distances / x.shape[1] ** 0.5
