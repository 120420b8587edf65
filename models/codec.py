"""Encoding IMAGE batches to LATENT dicts and back, with the checks artists need.

Conv models take any size divisible by their downscale: other sizes are reflect-padded
(and the decode crops the padding off again), centre-cropped, resized, or refused, as the
caller chooses. Dense models take exactly their image_size (or resize to it). Big images are
run in tiles (tiling.py), and in bf16 where that is faster (precision.py; the linear path, which
carries most of the picture, stays float32, so the result matches float32 to well under 1/255).
"""
import torch
import torch.nn.functional as F

from . import formats, refine, tiling
from .errors import AtelierError
from .grain import WORKING_COPIES as GRAIN_COPIES, add_grain, check_amount
from .networks import ARCHITECTURES
from .precision import inference_dtype

FITS = ("pad", "crop", "resize", "error")


class CodecError(AtelierError):
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


def prepare_images(ae, images, fit="pad"):
    """IMAGE [B,H,W,C] -> [B,3,H',W'] float32 the model accepts."""
    if fit not in FITS:
        raise CodecError(f"unknown fit {fit!r}; choose one of {', '.join(FITS)}")
    x = formats.image_to_bchw(images, "clean", CodecError)
    net = ae.model
    if net.fixed_size:
        s = net.image_size
        if tuple(x.shape[-2:]) != (s, s):
            if fit != "resize":
                raise CodecError(f"this dense model takes {s}x{s} images but got {x.shape[-1]}x{x.shape[-2]}; "
                                 f"set fit to resize, or load the images at size {s}")
            x = F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return x
    return _fit_conv(x, net.downscale, fit)


def latent_of(ae, z, size=None):
    """A LATENT dict for samples ``z`` made by ``ae``, labelled so Decode can tell another model's latents."""
    return formats.make_latent(z, ae.model_id, ae.config["architecture"], size)


def memory_needed(ae):
    """Device bytes an encode or decode needs: the weights and one pass's activations (tiling keeps those
    under its budget, inputs and outputs stay on the CPU)."""
    return ae.nbytes() + tiling.MEMORY_BUDGET


@torch.no_grad()
def encode(ae, images, fit="pad", device="cpu", progress=None, refine_steps=0, on_step=lambda: None):
    """IMAGE -> LATENT dict (samples on the CPU, like ComfyUI's own latents); ``progress(done, total)`` per
    pass or tile. ``refine_steps`` > 0 then fits each latent to its image through the decoder (refine.py);
    ``on_step`` (progress) runs before each of those steps."""
    h, w = images.shape[1:3] if isinstance(images, torch.Tensor) and images.ndim == 4 else (0, 0)
    x = prepare_images(ae, images, fit)
    net = ae.on(device).model
    z = tiling.encode(net, x, device, inference_dtype(ae.config, device), progress=progress)
    if refine_steps > 0:
        try:
            z = refine.refine(net, net.to_model_channels(x.to(device)), z.to(device), refine_steps, on_step).cpu()
        except refine.RefineError as e:
            raise CodecError(str(e)) from None
    return latent_of(ae, z, (h, w) if fit == "pad" and tuple(x.shape[-2:]) != (h, w) else None)


def check_latent(ae, latent):
    """The latent's samples as [B,C,h,w] if this model can decode them, else a CodecError."""
    z = formats.latent_samples(latent)
    source, made_by, _ = formats.latent_labels(latent)
    cfg, net = ae.config, ae.model
    c = net.latent_channels
    if z.shape[1] != c:
        hint = (" It looks like a Stable Diffusion latent (from VAE Encode or Empty Latent Image);"
                if z.shape[1] in (4, 16) and source is None else "")
        raise CodecError(f"this latent has {z.shape[1]} channels but the autoencoder expects {c}: it came from "
                         f"another model.{hint} Encode the images with this same autoencoder (node Encode to Latent "
                         "with Autoencoder)")
    if made_by in ARCHITECTURES and ARCHITECTURES[made_by].fixed_size != net.fixed_size:
        raise CodecError(f"this latent was made by a {made_by} autoencoder but this one is {cfg['architecture']}; "
                         "a dense model's latent is one vector per image, a conv model's a grid. Decode it with "
                         "the autoencoder that encoded it")
    if net.fixed_size and tuple(z.shape[-2:]) != (1, 1):
        raise CodecError(f"a dense model's latent is [batch, {c}, 1, 1] but this one is {list(z.shape)}; it was "
                         "resized by another node or came from a conv model")
    return z


def decoded_bytes(ae, z):
    """Memory of decoding latents ``z`` [B,C,h,w]: the float32 images, their NHWC copy and the crop, and grain's
    (the passes themselves stay within tiling.MEMORY_BUDGET)."""
    net = ae.model
    side = (net.image_size,) * 2 if net.fixed_size else (z.shape[-2] * net.downscale, z.shape[-1] * net.downscale)
    picture = 3 * side[0] * side[1] * 4
    grain = (z.shape[0] + GRAIN_COPIES) * picture if ae.state.summary.get("grain") else 0   # its new batch
    return z.shape[0] * picture * 3 + grain


@torch.no_grad()
def decode(ae, latent, device="cpu", progress=None, grain=1.0):
    """LATENT -> IMAGE [B,H,W,3] on the CPU, with encode-time padding removed; ``progress`` as for encode. A model
    trained with loss sharp adds ``grain`` times its fitted grain (grain.py; 0 = the decoder's picture alone)."""
    z = check_latent(ae, latent)
    check_amount(grain)
    y = tiling.decode(ae.on(device).model, z, device, inference_dtype(ae.config, device), progress=progress)
    y = add_grain(y, ae.state.summary.get("grain", 0.0), grain)
    size = formats.latent_labels(latent)[2]
    if size and not ae.model.fixed_size:
        f = ae.model.downscale
        h, w = size
        # Only crop when the latent still has the padded size (a resize by another node voids it).
        if (-(-h // f), -(-w // f)) == tuple(z.shape[-2:]):
            ph, pw = y.shape[-2] - h, y.shape[-1] - w
            y = y[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
    return formats.bchw_to_image(y)
