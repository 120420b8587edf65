"""Latent arithmetic on [B,C,h,w] tensors: the maths behind the mix nodes."""
import torch
import torch.nn.functional as F

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
        raise ValueError(f"the latents have different channel counts ({a.shape[1]} and {b.shape[1]}), so they "
                         "come from different models; encode both images with the same autoencoder")
    if b.shape[-2:] != a.shape[-2:]:
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
    if b.shape[0] != a.shape[0]:
        if b.shape[0] == 1:
            b = b.expand(a.shape[0], -1, -1, -1)
        elif a.shape[0] == 1:
            a = a.expand(b.shape[0], -1, -1, -1)
        else:
            raise ValueError(f"latent batches of {a.shape[0]} and {b.shape[0]} cannot be paired; use batches of "
                             "the same size, or a single latent on one side")
    return a, b


def mix(a, b, factor, mode, c=None):
    """Combine latents a and b; ``factor`` is the amount of b (lerp/slerp) or its scale.

    difference-add is the analogy a + factor * (b - c): "what c lacks that b has, added to a".
    Without c it adds b's detail (b minus its own per-channel mean), leaving a's overall tone.
    """
    a, b = match_latent(a, b)
    if c is not None:
        a, c = match_latent(a, c)
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
    raise ValueError(f"unknown mix mode {mode!r}; choose one of {', '.join(MIX_MODES)}")


EASINGS = ("linear", "ease-in-out", "cosine")


def ease(t, kind):
    if kind == "linear":
        return t
    if kind == "ease-in-out":  # smoothstep: gentle start and stop at each keyframe
        return t * t * (3 - 2 * t)
    if kind == "cosine":
        return 0.5 - 0.5 * torch.cos(torch.pi * t)
    raise ValueError(f"unknown easing {kind!r}; choose one of {', '.join(EASINGS)}")


def walk(keyframes, frames, method="slerp", easing="linear", loop=False):
    """``frames`` latents travelling through a batch of keyframes [K,C,h,w] (K >= 2), keyframes included."""
    k = keyframes.shape[0]
    if k < 2:
        raise ValueError("a walk needs at least 2 keyframe latents in the batch; encode 2 or more images")
    if frames < 2:
        raise ValueError("a walk needs at least 2 frames")
    keys = torch.cat([keyframes, keyframes[:1]]) if loop else keyframes
    segments = keys.shape[0] - 1
    # Positions along the path; a loop leaves out the last frame (it would repeat the first).
    pos = torch.arange(frames, dtype=torch.float64) * segments / (frames if loop else frames - 1)
    out = []
    for p in pos.tolist():
        i = min(int(p), segments - 1)
        t = ease(torch.tensor(p - i, dtype=torch.float64), easing)
        a, b = keys[i:i + 1], keys[i + 1:i + 2]
        out.append(slerp(a, b, t) if method == "slerp" else torch.lerp(a, b, t.to(a.dtype)))
    return torch.cat(out)
