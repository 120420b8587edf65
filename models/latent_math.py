"""Latent arithmetic on [B,C,h,w] tensors: the maths behind the mix nodes."""
import torch
import torch.nn.functional as F

from . import interrupt
from .errors import AtelierError
from .formats import check_mask_batch, mask_batch
from .pca import principal_components


class LatentError(AtelierError):
    """A latent, mask or setting the latent maths cannot use; the message says how to fix it."""


MIX_MODES = ("lerp", "slerp", "add", "subtract", "difference-add")


def slerp(a, b, t, eps=1e-7):
    """Spherical interpolation per sample (each latent flattened to one vector).

    Keeps the norm on the arc between |a| and |b| (interpolated linearly), so midpoints do
    not shrink toward zero as lerp does. Falls back to lerp when the vectors are (anti)parallel
    or zero, where the arc is undefined.
    """
    shape = a.shape
    a2, b2 = a.reshape(shape[0], -1).double(), b.reshape(shape[0], -1).double()
    na, nb = a2.norm(dim=1, keepdim=True), b2.norm(dim=1, keepdim=True)
    ua, ub = a2 / na.clamp_min(eps), b2 / nb.clamp_min(eps)
    dot = (ua * ub).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    t = torch.as_tensor(t, dtype=torch.float64)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so.clamp_min(eps)
    out = direction * ((1 - t) * na + t * nb)
    degenerate = (so.abs() < 1e-6) | (na < eps) | (nb < eps)
    out = torch.where(degenerate, (1 - t) * a2 + t * b2, out)
    return out.reshape(shape).to(a.dtype)


def match_latent(a, b):
    """Bring ``b`` to ``a``'s spatial size (bilinear) and pair batches (broadcasting a batch of 1)."""
    if b.shape[1] != a.shape[1]:
        raise LatentError(f"the latents have different channel counts ({a.shape[1]} and {b.shape[1]}), so they "
                         "come from different models; encode both images with the same autoencoder")
    b = b.to(a.dtype)  # lerp and friends need one dtype (a half-precision latent meets a float32 one)
    if b.shape[-2:] != a.shape[-2:]:
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
    n = paired_batch(a.shape[0], b.shape[0])
    return tuple(x if x.shape[0] == n else x.expand(n, -1, -1, -1) for x in (a, b))


# Batch-size rules, checked on tensors and, before anything runs, on the sizes alone (headless pre-flight);
# a size of None is not known yet and passes.

def paired_batch(*sizes):
    """The batch that latents of these batch sizes make together: equal sizes, or a single latent on one side
    used with each of the other's; None if any size is not known yet."""
    many = sorted({n for n in sizes if n is not None} - {1})
    if len(many) > 1:
        raise LatentError(f"latent batches of {many[0]} and {many[1]} cannot be paired; use batches of the same "
                          "size, or a single latent on one side")
    return None if None in sizes else max(sizes)


def check_keyframes(k):
    if k is not None and k < 2:
        raise LatentError(f"a walk needs at least 2 keyframe latents in the batch, got {k}; encode 2 or more images")


def check_direction_batch(n):
    if n is not None and n < 2:
        raise LatentError(f"finding directions needs at least 2 latents, got {n}; encode a batch of several works")


def mix(a, b, factor, mode, c=None):
    """Combine latents a and b; ``factor`` is the amount of b (lerp/slerp) or its scale.

    difference-add is the analogy a + factor * (b - c): "what c lacks that b has, added to a".
    Without c it adds b's detail (b minus its own per-channel mean), leaving a's overall tone.
    """
    a, b = match_latent(a, b)
    if c is not None:
        a, c = match_latent(a, c)
        a, b = match_latent(a, b)  # c's batch may have widened a's
    if mode == "lerp":
        return torch.lerp(a, b, factor)
    if mode == "slerp":
        return slerp(a, b, factor)
    if mode == "add":
        return a + factor * b
    if mode == "subtract":
        return a - factor * b
    if mode == "difference-add":
        base = c if c is not None else b.mean(dim=(-2, -1), keepdim=True)
        return a + factor * (b - base)
    raise LatentError(f"unknown mix mode {mode!r}; choose one of {', '.join(MIX_MODES)}")


EASINGS = ("linear", "ease-in-out", "cosine")


def ease(t, kind):
    if kind == "linear":
        return t
    if kind == "ease-in-out":  # smoothstep: gentle start and stop at each keyframe
        return t * t * (3 - 2 * t)
    if kind == "cosine":
        return 0.5 - 0.5 * torch.cos(torch.pi * t)
    raise LatentError(f"unknown easing {kind!r}; choose one of {', '.join(EASINGS)}")


def walk(keyframes, frames, method="slerp", easing="linear", loop=False):
    """``frames`` latents travelling through a batch of keyframes [K,C,h,w] (K >= 2), keyframes included."""
    check_keyframes(keyframes.shape[0])
    if frames < 2:
        raise LatentError("a walk needs at least 2 frames")
    keys = torch.cat([keyframes, keyframes[:1]]) if loop else keyframes
    segments = keys.shape[0] - 1
    # Positions along the path; a loop leaves out the last frame (it would repeat the first).
    pos = torch.arange(frames, dtype=torch.float64) * segments / (frames if loop else frames - 1)
    out = []
    for p in pos.tolist():
        interrupt.check()
        i = min(int(p), segments - 1)
        t = ease(torch.tensor(p - i, dtype=torch.float64), easing)
        a, b = keys[i:i + 1], keys[i + 1:i + 2]
        out.append(slerp(a, b, t) if method == "slerp" else torch.lerp(a, b, t.to(a.dtype)))
    return torch.cat(out)


def _channel_stats(z, eps=1e-5):
    """Per-sample, per-channel mean and std over the latent grid."""
    mean = z.mean(dim=(-2, -1), keepdim=True)
    std = (z.var(dim=(-2, -1), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def fit_mask(mask, like, feather=0.0):
    """A ComfyUI MASK ([H,W] or [B,H,W], 1 = selected) as [B,1,h,w] on ``like``'s latent grid, feathered
    by a Gaussian blur of ``feather`` latent cells."""
    m = mask_batch(mask, like.dtype, nan="refuse", error=LatentError)
    m = F.interpolate(m[:, None], size=like.shape[-2:], mode="area" if m.shape[-1] >= like.shape[-1] else "bilinear")
    if feather > 1e-3:  # below that the blur is invisible, and a tiny one would divide 0 by 0
        r = max(1, int(3 * feather))
        x = torch.arange(-r, r + 1, dtype=like.dtype)
        k = torch.exp(-x ** 2 / (2 * feather ** 2))
        k = k / k.sum()
        m = F.pad(m, (r, r, r, r), mode="replicate")
        m = F.conv2d(F.conv2d(m, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
        # Rounding in the blur must not turn a solid mask into 0.9999999: snap near-0/1 values.
        m = torch.where(m > 1 - 1e-6, torch.ones_like(m), torch.where(m < 1e-6, torch.zeros_like(m), m))
    check_mask_batch(m.shape[0], like.shape[0], "a latent", LatentError)
    return m.clamp(0, 1)


def style_mix(content, style, strength=1.0, mask=None):
    """AdaIN: give ``content`` the per-channel mean and std of ``style`` (strength 1 = fully), optionally
    only where ``mask`` ([B,1,h,w], from fit_mask) is 1."""
    content, style = match_latent(content, style)
    cm, cs = _channel_stats(content)
    sm, ss = _channel_stats(style)
    restyled = (content - cm) / cs * ss + sm
    weight = strength if mask is None else strength * mask
    return torch.lerp(content, restyled, weight if torch.is_tensor(weight) else float(weight))


SPLITS = ("left-right", "top-bottom", "circle", "diagonal")


def split_mask(split, position, h, w):
    """A [1,h,w] cut with no painted mask: 1 (latent A) left of / above / inside / before ``position``
    (0..1 of the width, height, half-diagonal or diagonal)."""
    y, x = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    where = {"left-right": x, "top-bottom": y, "diagonal": (x + y) / 2,
             "circle": ((x - 0.5) ** 2 + (y - 0.5) ** 2).sqrt() / 0.5 ** 0.5}
    if split not in where:
        raise LatentError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return (where[split] < position).float()[None]


def collage(a, b, mask):
    """``a`` where the mask is 1, ``b`` where it is 0, blended in between."""
    a, b = match_latent(a, b)
    return torch.lerp(b, a, mask)   # exact at 0 and 1


def smooth_noise(shape, generator, cells=4):
    """Unit-variance Gaussian noise [B,C,h,w] that varies smoothly over about ``cells`` latent cells, the way
    real latents do (independent cells decode to confetti)."""
    b, c, h, w = shape
    coarse = torch.randn((b, c, max(1, -(-h // cells)) + 1, max(1, -(-w // cells)) + 1), generator=generator,
                         dtype=torch.float64)
    up = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    return (up - up.mean(dim=(-2, -1), keepdim=True)) / up.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8) \
        if h * w > 1 else torch.randn(shape, generator=generator, dtype=torch.float64)


def sample_latents(stats, shape, generator, temperature=1.0, variational=False):
    """New latents [B,C,h,w]: N(0, T^2) for a VAE's prior, else N(mean, T^2 cov) from training statistics,
    with spatially smooth noise for plain models so neighbouring cells agree."""
    if variational:
        return (temperature * torch.randn(shape, generator=generator, dtype=torch.float64)).float()
    noise = smooth_noise(shape, generator)
    mean, cov = stats["mean"].double(), stats["cov"].double()
    c = mean.shape[0]
    jitter = 1e-6 * max(1e-12, float(cov.diagonal().mean()))
    chol = torch.linalg.cholesky(cov + jitter * torch.eye(c, dtype=torch.float64))
    z = mean + temperature * noise.movedim(1, -1) @ chol.T
    return z.movedim(-1, 1).float()


def latent_directions(z, max_directions=16):
    """PCA over a batch of latents [N,C,h,w] (each flattened): mean, orthonormal directions ordered by
    variance, and the variance along each. At most N-1 directions carry variance."""
    n = z.shape[0]
    check_direction_batch(n)
    mean, components, s = principal_components(z.reshape(n, -1), min(max_directions, n - 1))
    k = len(components)
    variance = s[:k] ** 2 / (n - 1)
    return {"mean": mean.reshape(z.shape[1:]).float(), "directions": components.reshape(k, *z.shape[1:]).float(),
            "variance": variance.float(), "total_variance": float((s ** 2).sum() / (n - 1))}


def _directions(directions):
    """(directions [k,C,h,w], variance [k]) of a DIRECTIONS value, refused unless it is what latent_directions
    makes: a workflow's value can be anything (a prompt, another pack's node), and a key or type error would not
    say what to connect."""
    d, var = (directions.get("directions"), directions.get("variance")) if isinstance(directions, dict) else (0, 0)
    if not (isinstance(d, torch.Tensor) and isinstance(var, torch.Tensor) and d.ndim == 4 and var.ndim == 1
            and d.shape[0] == var.shape[0] and d.is_floating_point() and var.is_floating_point()
            and bool(torch.isfinite(d).all()) and bool((var >= 0).all()) and bool(torch.isfinite(var).all())):
        raise LatentError("directions is not what Latent Directions makes (a dict of 'directions' [k, channels, "
                          "height, width] and their 'variance' [k], finite); connect the directions output of a "
                          "Latent Directions node")
    return d, var


def edit_along(z, directions, moves):
    """Move latents along directions: ``moves`` is [(index, strength in standard deviations)]."""
    d, var = _directions(directions)
    out = z.clone()
    for index, strength in moves:
        if not 0 <= index < d.shape[0]:
            raise LatentError(f"direction {index} does not exist; these directions are numbered 0..{d.shape[0] - 1}")
        step = d[index] * var[index].sqrt() * strength
        if step.shape != z.shape[1:]:
            if step.shape[0] != z.shape[1]:
                raise LatentError(f"these directions have {step.shape[0]} channels but the latent has {z.shape[1]}; "
                                 "find directions with the same autoencoder")
            step = F.interpolate(step[None], size=z.shape[-2:], mode="bilinear", align_corners=False)[0]
        out = out + step.to(out.dtype)
    return out


def latent_rgb(z):
    """[B,C,h,w] -> [B,h,w,3] in 0..1: the first three principal components of the channel values as RGB."""
    b, c, h, w = z.shape
    v = z.movedim(1, -1).reshape(-1, c)
    mean, components, _ = principal_components(v, 3)
    proj = (v.double() - mean) @ components.T
    if proj.shape[1] < 3:
        proj = torch.cat([proj, proj.new_zeros(proj.shape[0], 3 - proj.shape[1])], 1)
    lo, hi = proj.quantile(0.01, dim=0), proj.quantile(0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    return rgb.reshape(b, h, w, 3).float()


def latent_channel_grid(z):
    """[B,C,h,w] -> [B*C,h,w,3]: each channel as a grey image, normalised per channel over the batch."""
    lo = z.amin(dim=(0, 2, 3), keepdim=True)
    hi = z.amax(dim=(0, 2, 3), keepdim=True)
    g = ((z - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    return g.reshape(-1, *z.shape[-2:])[..., None].expand(-1, -1, -1, 3).float()
