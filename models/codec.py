"""Encoding IMAGE batches to LATENT dicts and back, with the checks artists need.

Conv models take any size divisible by their downscale: other sizes are reflect-padded
(and the decode crops the padding off again), centre-cropped, resized, or refused, as the
caller chooses. Dense models take exactly their image_size (or resize to it). Big images are
run in tiles (tiling.py), and in bf16 where that is faster (precision.py; the linear path, which
carries most of the picture, stays float32, so the result matches float32 to well under 1/255).
"""
import torch
import torch.nn.functional as F

from . import tiling
from .latent_math import samples_of
from .precision import inference_dtype

FITS = ("pad", "crop", "resize", "error")


class CodecError(ValueError):
    """An image or latent this model cannot take; the message says how to fix it."""


def _fit_conv(x, f, fit):
    h, w = x.shape[-2:]
    if h % f == 0 and w % f == 0:
        return x
    if fit == "pad":
        ph, pw = -h % f, -w % f
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
    if fit == "crop":
        nh, nw = h // f * f, w // f * f
        if nh == 0 or nw == 0:
            raise CodecError(f"{w}x{h} images are smaller than this model's downscale ({f}); use fit=pad")
        t, l = (h - nh) // 2, (w - nw) // 2
        return x[..., t:t + nh, l:l + nw]
    if fit == "resize":
        nh, nw = max(f, round(h / f) * f), max(f, round(w / f) * f)
        return F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    raise CodecError(f"images are {w}x{h} but this model needs width and height divisible by {f}; set this "
                     "node's fit to pad, crop or resize, or resize the images first (e.g. Upscale Image)")


def to_rgb(images):
    """IMAGE [B,H,W,C] -> [B,3,H,W] float32 RGB in 0..1 (gray expanded, alpha dropped, NaN/Inf cleaned)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or 0 in images.shape:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise CodecError(f"expected a non-empty IMAGE batch [B,H,W,C], got {got}; check the node that made it")
    x = images.to(torch.float32).movedim(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 4:
        x = x[:, :3]
    elif x.shape[1] != 3:
        raise CodecError(f"images have {x.shape[1]} channels; expected RGB")
    return torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0, 1)


def prepare_images(ae, images, fit="pad"):
    """IMAGE [B,H,W,C] -> [B,3,H',W'] float32 the model accepts."""
    if fit not in FITS:
        raise CodecError(f"unknown fit {fit!r}; choose one of {', '.join(FITS)}")
    x = to_rgb(images)
    cfg = ae.config
    if cfg["architecture"] == "dense":
        s = cfg["image_size"]
        if tuple(x.shape[-2:]) != (s, s):
            if fit != "resize":
                raise CodecError(f"this dense model takes {s}x{s} images but got {x.shape[-1]}x{x.shape[-2]}; "
                                 f"set fit to resize, or load the images at size {s}")
            x = F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return x
    return _fit_conv(x, cfg["downscale"], fit)


def latent_of(ae, z):
    """A LATENT dict for samples ``z`` made by ``ae``, labelled so Decode can tell another model's latents."""
    return {"samples": z, "atelier_model": ae.model_id, "atelier_architecture": ae.config["architecture"]}


@torch.no_grad()
def encode(ae, images, fit="pad", device="cpu", progress=None):
    """IMAGE -> LATENT dict (samples on the CPU, like ComfyUI's own latents); ``progress(done, total)`` per
    pass or tile."""
    h, w = images.shape[1:3] if isinstance(images, torch.Tensor) and images.ndim == 4 else (0, 0)
    x = prepare_images(ae, images, fit)
    z = tiling.encode(ae.model.to(device), x, device, inference_dtype(ae.config, device), progress=progress)
    latent = latent_of(ae, z)
    if fit == "pad" and tuple(x.shape[-2:]) != (h, w):
        latent["atelier_size"] = [int(h), int(w)]
    return latent


def check_latent(ae, latent):
    """The latent's samples as [B,C,h,w] if this model can decode them, else a CodecError."""
    try:
        z = samples_of(latent)
    except ValueError as e:
        raise CodecError(str(e)) from None
    cfg = ae.config
    c = cfg["latent_channels"]
    if z.shape[1] != c:
        hint = (" It looks like a Stable Diffusion latent (from VAE Encode or Empty Latent Image);"
                if z.shape[1] in (4, 16) and "atelier_model" not in latent else "")
        raise CodecError(f"this latent has {z.shape[1]} channels but the autoencoder expects {c}: it came from "
                         f"another model.{hint} Encode the images with Atelier Encode using this same autoencoder")
    made_by = latent.get("atelier_architecture")
    if made_by in ("conv", "conv-vae", "dense") and (made_by == "dense") != (cfg["architecture"] == "dense"):
        raise CodecError(f"this latent was made by a {made_by} autoencoder but this one is {cfg['architecture']}; "
                         "a dense model's latent is one vector per image, a conv model's a grid. Decode it with "
                         "the autoencoder that encoded it")
    if cfg["architecture"] == "dense" and tuple(z.shape[-2:]) != (1, 1):
        raise CodecError(f"a dense model's latent is [batch, {c}, 1, 1] but this one is {list(z.shape)}; it was "
                         "resized by another node or came from a conv model")
    return z


def decoded_bytes(ae, z):
    """Memory of decoding latents ``z`` [B,C,h,w]: the float32 images, their NHWC copy and the crop
    (the passes themselves stay within tiling.MEMORY_BUDGET)."""
    cfg = ae.config
    side = (cfg["image_size"],) * 2 if cfg["architecture"] == "dense" else \
        (z.shape[-2] * cfg["downscale"], z.shape[-1] * cfg["downscale"])
    return z.shape[0] * 3 * side[0] * side[1] * 4 * 3


@torch.no_grad()
def decode(ae, latent, device="cpu", progress=None):
    """LATENT -> IMAGE [B,H,W,3] on the CPU, with encode-time padding removed; ``progress`` as for encode."""
    z = check_latent(ae, latent)
    y = tiling.decode(ae.model.to(device), z, device, inference_dtype(ae.config, device), progress=progress)
    size = latent.get("atelier_size")
    if (ae.config["architecture"] != "dense" and isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) for v in size)):
        f = ae.config["downscale"]
        h, w = size
        # Only crop when the latent still has the padded size (a resize by another node voids it).
        if (-(-h // f), -(-w // f)) == tuple(z.shape[-2:]):
            ph, pw = y.shape[-2] - h, y.shape[-1] - w
            y = y[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
    return y.movedim(1, -1).contiguous()
