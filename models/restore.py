"""Restoring damaged pictures with an autoencoder trained on damaged inputs (corruption != none).

Without a mask the whole picture is re-made (noise, blur, JPEG blocks). With a mask of the damage
(1 = missing), only those pixels are re-made: they start grey, as the holes were in training, and
each further pass feeds the previous guess back in with the known pixels put back exactly. An
all-zero mask counts as none: it is what Load Image gives for an opaque picture nobody painted on.
"""
import torch
import torch.nn.functional as F

from . import codec, formats, tiling

HOLE_FILL = 0.5  # the value corruption.py paints holes with during training


def pixel_mask(mask, images):
    """A ComfyUI MASK ([H,W] or [B,H,W], 1 = damaged) as [B,H,W,1] on the images' pixel grid."""
    m = formats.mask_batch(mask, nan=1.0)   # an unknown pixel counts as damaged: it is re-made
    formats.check_mask_batch(m.shape[0], images.shape[0], "an image", codec.CodecError)
    if tuple(m.shape[-2:]) != tuple(images.shape[1:3]):
        m = F.interpolate(m[:, None], size=images.shape[1:3], mode="nearest")[:, 0]
    return m.clamp(0, 1)[..., None].expand(images.shape[0], -1, -1, 1)


def restore(ae, images, mask=None, passes=2, device="cpu", progress=None):
    """IMAGE [B,H,W,C] -> restored IMAGE [B,H,W,3]; known pixels are kept exactly where a mask is given.
    ``progress(done, total)`` fills once over all encodes and decodes."""
    x = formats.image_to_bchw(images, "clean", codec.CodecError).movedim(1, -1)
    ae = ae.on(device)   # one copy on the device for all passes
    m = pixel_mask(mask, x) if mask is not None else None
    whole = m.flatten(1).amax(1) == 0 if m is not None else torch.ones(len(x), dtype=torch.bool)
    passes = max(1, int(passes))
    phases = 2 * (int(whole.any()) + passes * int(not whole.all()))   # an encode and a decode each
    done = iter(range(phases))

    def remake(pictures):
        fit = "resize" if ae.model.fixed_size else "pad"
        latent = codec.encode(ae, pictures, fit, device, tiling.phase(progress, next(done), phases))
        out = codec.decode(ae, latent, device, tiling.phase(progress, next(done), phases))
        if out.shape[1:3] != pictures.shape[1:3]:   # dense models work at their own size
            out = F.interpolate(out.movedim(-1, 1), size=pictures.shape[1:3], mode="bicubic",
                                align_corners=False).clamp(0, 1).movedim(1, -1)
        return out

    if whole.all():
        return remake(x)
    out = x.clone()
    if whole.any():
        out[whole] = remake(x[whole])
    held = ~whole
    m = m[held]
    known = x[held] * (1 - m)
    guess = known + HOLE_FILL * m
    for _ in range(passes):
        guess = known + remake(guess) * m
    out[held] = guess
    return out
