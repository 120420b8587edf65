"""ComfyUI's value formats in one place: IMAGE, LATENT and MASK read, checked and written.

IMAGE is float32 [B,H,W,C] in 0..1; LATENT is {"samples": [B,C,h,w]} plus the labels this pack adds;
MASK is [H,W] or [B,H,W] with 1 = selected. Every reader takes an explicit ``nan`` policy for NaN and
infinite values: "clean" (pictures to show or encode: NaN and -inf become 0, +inf becomes 1), "refuse"
(training data, latents: a clear error), or for masks a number to put in their place. Nothing here
imports ComfyUI.
"""
import numpy as np
import torch
from PIL import Image

from .errors import AtelierError

# Labels on the LATENT dicts this pack makes: which model made them, its architecture, and the picture
# size before encode-time padding (so Decode can crop it off again).
MODEL_LABEL, ARCHITECTURE_LABEL, SIZE_LABEL = "atelier_model", "atelier_architecture", "atelier_size"


class FormatError(AtelierError):
    """A value that is not the IMAGE, LATENT or MASK it should be; the message says what to connect."""


def image_to_bchw(images, nan, error=FormatError):
    """IMAGE [B,H,W,C] -> a fresh [B,3,H,W] float32 RGB tensor in 0..1 (gray expanded, alpha dropped).
    ``nan``: "clean" or "refuse"; ``error``: the AtelierError subclass the caller answers with."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or 0 in images.shape:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        empty = isinstance(images, torch.Tensor) and images.ndim == 4
        raise error(("the image batch is empty: " if empty else "")
                    + f"expected a non-empty IMAGE batch [B,H,W,C], got {got}; check the node that made it "
                    "(a Load Image or Load Image Folder node, its folder and count)")
    _check_floating(images, "images", "an IMAGE holds floating-point numbers in 0..1", error)
    x = images.detach().to(torch.float32).movedim(-1, 1)
    c = x.shape[1]
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif c == 4:
        x = x[:, :3]
    elif c != 3:
        raise error(f"images have {c} channels; expected RGB")
    if nan == "clean":
        return torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0, 1)
    if nan != "refuse":
        raise ValueError(f"unknown NaN policy {nan!r}")
    if not torch.isfinite(x).all():
        raise error("images contain NaN or infinite pixels; fix the node that made them")
    return x.clamp(0, 1)


def _check_floating(t, what, should, error):
    """Refuse integer, bool and complex values: read as floats, a uint8 picture (0..255) would turn white and a
    complex latent lose half of itself, and latent maths (lerp) fails on integers."""
    if not t.is_floating_point():
        raise error(f"{what} hold {str(t.dtype).removeprefix('torch.')} values; {should}. Check the node that "
                    "made them")


def bchw_to_image(x):
    """[B,3,H,W] -> IMAGE [B,H,W,3] (contiguous, as ComfyUI's own nodes hand them on)."""
    return x.movedim(1, -1).contiguous()


def image_to_pil(image):
    """One IMAGE [H,W,3] (or the first of a batch) as a PIL image, converted as ComfyUI's savers and
    previews do (truncating to 8 bits), so a file or preview matches ComfyUI's byte for byte."""
    image = image[0] if image.ndim == 4 else image
    return Image.fromarray(np.clip(image.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8))


def latent_samples(latent, name="the latent"):
    """The [B,C,h,w] samples of a LATENT dict, or a FormatError that says what is wrong with it. NaN policy:
    always "refuse" (latent maths would spread a NaN over the whole picture)."""
    z = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(z, torch.Tensor):
        raise FormatError(f"expected a LATENT (a dict with 'samples') for {name}; connect an Encode or latent node")
    if z.ndim != 4 or 0 in z.shape:
        raise FormatError(f"{name} has samples of shape {list(z.shape)}; expected [batch, channels, height, width] "
                          "with no empty dimension")
    _check_floating(z, f"the samples of {name}", "a LATENT holds floating-point numbers", FormatError)
    if not torch.isfinite(z).all():
        raise FormatError(f"{name} contains NaN or infinite values; check the nodes that made it")
    return z


def make_latent(samples, model_id, architecture, size=None):
    """A LATENT dict labelled with the model that made it (and the unpadded picture size, if padded)."""
    latent = {"samples": samples, MODEL_LABEL: model_id, ARCHITECTURE_LABEL: architecture}
    if size is not None:
        latent[SIZE_LABEL] = [int(v) for v in size]
    return latent


def latent_labels(latent):
    """(model id, architecture, unpadded [h, w]) from a LATENT's labels; None for any label that is absent or
    malformed (another node may have dropped or edited them)."""
    get = latent.get if isinstance(latent, dict) else (lambda key: None)
    model, arch, size = get(MODEL_LABEL), get(ARCHITECTURE_LABEL), get(SIZE_LABEL)
    size_ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)
    return (model if isinstance(model, str) else None, arch if isinstance(arch, str) else None,
            list(size) if size_ok else None)


def check_mask_batch(masks, batch, what, error=FormatError):
    """A batch of ``masks`` fits ``what`` (e.g. "an image") batch of ``batch``: one mask for all, or one each.
    Sizes alone, so the headless pre-flight checks it before anything runs (None: not known yet)."""
    if None not in (masks, batch) and masks not in (1, batch):
        raise error(f"a mask batch of {masks} does not fit {what} batch of {batch}")


def mask_batch(mask, dtype=torch.float32, nan="refuse", error=FormatError):
    """A MASK ([H,W] or [B,H,W]) as a checked [B,H,W] batch. ``nan``: "refuse" (NaN or infinite values are an
    error), or the value NaN takes (infinities become the largest finite values; callers clamp to 0..1)."""
    m = mask.to(dtype) if isinstance(mask, torch.Tensor) else None
    m = m[None] if m is not None and m.ndim == 2 else m
    if m is None or m.ndim != 3 or 0 in m.shape:
        got = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise error(f"a mask must be a non-empty [H,W] or [B,H,W], got {got}")
    if nan == "refuse":
        if not torch.isfinite(m).all():
            raise error("the mask contains NaN or infinite values; check the node that made it")
        return m
    return torch.nan_to_num(m, nan=float(nan))
