"""Encode refinement: fit each latent to its image through the frozen decoder (Adam on the latent).

The encoder guesses a latent in one pass; a few gradient steps on the latent itself find one that
the decoder paints closer to the image, trading time for fidelity. Each image keeps the best latent
seen, the encoder's own included, so refining never makes a reconstruction worse.
"""
import torch

from . import interrupt

REFINE_LR = 0.02          # Adam's step on latent values (the encoder's latents are of order 1)
MAX_PIXELS = 1 << 20      # a step holds the decoder's activations for one image: refine up to 1 megapixel


class RefineError(ValueError):
    """Latents or images refinement cannot use; the message says what to do."""


def _errors(net, z, x):
    """Per-image MSE of the clamped decode (straight-through: overshooting 0 or 1 costs nothing)."""
    y = net.decode_raw(z).float()
    y = y + (y.clamp(0, 1) - y).detach()
    return (y - x).square().flatten(1).mean(1)


def refine(net, x, z, steps, on_step=lambda: None):
    """Latents [B,C,h,w] fitted to images ``x`` (model channels, 0..1, the size the latents encode) in
    ``steps`` Adam steps each, one image at a time. Deterministic; Cancel is checked and ``on_step()``
    (progress) called before every step. Neither ``net`` nor ``z`` is changed."""
    if not torch.isfinite(z).all():
        raise RefineError("the latents contain NaN or infinite values, so there is nothing to refine: the "
                          "autoencoder's weights are probably broken; retrain it or load an earlier save")
    if x.shape[-2] * x.shape[-1] > MAX_PIXELS:
        raise RefineError(f"refine_steps works on images up to {MAX_PIXELS:,} pixels but these are "
                          f"{x.shape[-1]}x{x.shape[-2]}; set refine_steps to 0 for them")
    out = []
    with torch.inference_mode(False), torch.enable_grad():
        for i in range(z.shape[0]):
            xi, zi = x[i:i + 1].clone().float(), z[i:i + 1].clone().float()
            best, best_err = zi.clone(), None
            zi.requires_grad_(True)
            opt = torch.optim.Adam([zi], lr=REFINE_LR)
            for k in range(steps + 1):
                interrupt.check()
                on_step()
                err = _errors(net, zi, xi)[0]
                if best_err is None or err.item() < best_err:   # err belongs to zi before this step's update
                    best, best_err = zi.detach().clone(), err.item()
                if k == steps:
                    break
                # Gradients for the latent only: the model's own parameters are shared and left alone.
                (grad,) = torch.autograd.grad(err, [zi])
                zi.grad = grad
                opt.step()
            out.append(best)
    return torch.cat(out).to(z.dtype)
