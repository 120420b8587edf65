"""A prior over an autoencoder's latents: multi-scale patch nearest-neighbour generation in latent space.

In the spirit of GPNN ("Drop the GAN", Granot et al. 2022), measured against a small latent diffusion model
(bench/generation.py): the works' latents, at a few scales, are a bank of 3x3-cell patches. A new latent
starts as noise with the works' coarse statistics at the coarsest scale and is then, scale by scale,
upsampled and re-made from the bank: every cell's neighbourhood is replaced by its nearest patch of the
works (compared against blurred versions of the bank first, since the upsampled canvas is blurred), and
overlapping patches are averaged. A decoder only ever sees arrangements of real latent patches, so the
pictures are crisp, while the arrangement (the composition) is new.

Pictures bigger than the works are made coarse to fine: a composition at the works' size, then doubled
and re-made from the bank's finest patches at each scale, so a 1024 px sample from 96 px works is one
picture, not a tiling. Variations start from the work itself, mixed with noise by ``strength``; masked
variations put the unmasked part back at every scale and return it exactly.
"""
import math

import torch
import torch.nn.functional as F

PATCH = 3             # patch side in latent cells
MAX_PATCHES = 60_000  # per scale: a bigger bank is subsampled (seeded), which bounds memory and time
CHUNK_VALUES = 16 * 1024 * 1024   # 64 MB of distances at a time


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
    """The works' latents (a list of [N,C,h,w] tensors: each work's latent at a few scales, and mirrored)
    and how many patch-matching passes a scale gets. The banks are built from them when first needed."""

    def __init__(self, latents, crop, passes=2):
        self.latents = [z.float().cpu() for z in latents]
        self.channels = self.latents[0].shape[1]
        self.crop, self.passes = int(crop), int(passes)
        self._banks = None
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

    def banks(self):
        if self._banks is None:
            g = torch.Generator().manual_seed(0)
            self._banks = []
            for level in range(self.levels):
                zs = [resize(z, (max(1, z.shape[-2] >> level), max(1, z.shape[-1] >> level))) for z in self.latents]
                self._banks.append(PatchBank(zs, g))
            # Start noise: the coarsest scale's mean and channel covariance (colours that go together).
            v = torch.cat([z.movedim(1, -1).reshape(-1, self.channels) for z in zs]).double()
            # One cell gives no covariance (NaN) and flat works a zero one: the jitter's floor keeps it factorable.
            cov = torch.cov(v.T).reshape(self.channels, self.channels).nan_to_num(0.0)
            eye = torch.eye(self.channels, dtype=torch.float64)
            jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-6)
            self.start = v.mean(0).float(), torch.linalg.cholesky(cov + jitter * eye).float()
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

    @torch.no_grad()
    def generate(self, b, h, w, generator, temperature=1.0, passes=None, work=None, strength=1.0, mask=None):
        """[b,C,h,w] latents. With ``work`` ([b,C,h,w]), start from it mixed with noise by ``strength``; with
        ``mask`` ([b|1,1,h,w], 1 = change) put the work back outside the mask at every scale."""
        sizes, composition = self.stage_sizes(h, w)
        passes = int(passes or self.passes)
        self.banks()
        mean, chol = self.start
        noise = torch.randn((b, self.channels) + tuple(sizes[0]), generator=generator)
        x = (mean + temperature * noise.movedim(1, -1) @ chol.T).movedim(-1, 1)
        for i, size in enumerate(sizes):
            x = resize(x, size)
            if work is not None:
                x = torch.lerp(resize(work, size), x, strength)
            if i > 0 or work is not None:   # the coarsest noise is the composition: matched, it copies a work
                x = self._bank_of(i, len(sizes), composition).remake(x, passes)
            if mask is not None:
                x = torch.lerp(resize(work, size), x, resize(mask, size))
        return x

    def sample(self, shape, generator, temperature=1.0, passes=None):
        """New latents [B,C,h,w]."""
        b, _, h, w = shape
        return self.generate(b, h, w, generator, temperature, passes)

    def vary(self, z, strength, generator, passes=None, mask=None, temperature=1.0):
        """Variations of latents z [B,C,h,w] (strength 0 returns z itself); with ``mask`` ([B|1,1,h,w],
        1 = change) only there, the rest returned bit for bit."""
        if strength <= 0:
            return z.clone()
        out = self.generate(z.shape[0], z.shape[-2], z.shape[-1], generator, temperature, passes, z.float(),
                            float(strength), mask).to(z.dtype)
        return out if mask is None else torch.lerp(z, out, mask.to(z.dtype))   # exact where the mask is 0
