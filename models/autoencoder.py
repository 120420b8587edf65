"""The AUTOENCODER value handed between nodes: a network, its config and its training state.

Nodes never change an Autoencoder they receive; training works on ``clone()`` and
returns the clone, so ComfyUI's cached outputs stay valid.
"""
import copy
import uuid
from dataclasses import dataclass, field

import torch

from .config import validate_config
from .losses import loss_label
from .networks import build_network
from .speedups import accelerate


@dataclass
class TrainState:
    """What resuming needs: global step, optimizer moments, the loss curve, a summary."""

    step: int = 0
    optimizer: dict = None          # {param_index: {"step", "exp_avg", "exp_avg_sq"}} on CPU
    loss_history: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)   # JSON-safe: final_loss, data_size, ...
    latent_stats: dict = None       # per-channel statistics of training latents (for sampling)
    loss_scale: list = None         # fp16 training: [scale, growth tracker] of the gradient scaler
    adversary: dict = None          # loss sharp: the discriminator's {"weights", "optimizer"} (adversary.py)
    adv_history: list = field(default_factory=list)   # loss sharp: the weighted adversarial term per step
    val_history: list = field(default_factory=list)   # [global step, PSNR of the held-back works] pairs


class Autoencoder:
    def __init__(self, config, model=None, state=None, model_id=None, name=""):
        self.config = validate_config(config)
        self.model = accelerate(model if model is not None else build_network(self.config))
        self.model.eval()
        self.state = state or TrainState()
        # Identifies a model's lineage (kept through training and saving) so that Decode can
        # tell a latent that came from a different model.
        self.model_id = model_id or uuid.uuid4().hex
        self.name = name
        # When and by which pack version the file it was loaded from was saved (for the model card);
        # empty for a model made or trained in this session.
        self.origin = {}
        # A learned prior over the latents (latent_prior.LatentPrior), added by Train Latent Prior.
        self.prior = None

    @classmethod
    def new(cls, config, seed=0):
        config = validate_config(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_network(config)
        return cls(config, model)

    def clone(self):
        """A deep, independent copy (weights, optimizer state, history, prior)."""
        ae = Autoencoder(self.config, copy.deepcopy(self.model), copy.deepcopy(self.state), self.model_id, self.name)
        ae.prior = self.prior.clone() if self.prior is not None else None
        return ae

    def on(self, device):
        """This model to compute with on ``device``: itself when it is there, else a copy of its network there
        (state and identity shared, read-only). The shared model is never moved, so a cached AUTOENCODER does
        not stay in GPU memory behind ComfyUI's back."""
        device = torch.device(device)
        if self.device.type == device.type and (device.index is None or self.device == device):
            return self
        moved = Autoencoder(self.config, copy.deepcopy(self.model).to(device), self.state, self.model_id, self.name)
        moved.origin = self.origin
        return moved

    def nbytes(self):
        """Bytes of the network's weights and buffers."""
        return sum(t.numel() * t.element_size() for t in (*self.model.parameters(), *self.model.buffers()))

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def architecture(self):
        return self.config["architecture"]

    def describe(self):
        """A short human-readable card."""
        c, net = self.config, self.model
        n = sum(p.numel() for p in net.parameters())
        lines = [f"{c['architecture']} autoencoder, {n:,} parameters",
                 f"latent: {c['latent_channels']} channels"
                 + ("" if net.fixed_size else f" at 1/{net.downscale} scale")
                 + f" ({net.compression():.0f}x compression)",
                 "input: " + ("grayscale" if c["channels"] == 1 else "RGB")
                 + (f" {net.image_size}x{net.image_size}" if net.fixed_size else ", any size"
                    + (f" divisible by {net.downscale}" if net.downscale > 1 else ""))]
        s = self.state.summary
        if self.state.step:
            lines.append(f"trained {self.state.step} steps on {s.get('data_size', '?')} images"
                         + (f" with loss {s['loss']}" if isinstance(s.get("loss"), str) else "")
                         + (f", {loss_label(s['final_loss'])}" if "final_loss" in s else ""))
            if "val_psnr" in s:
                lines.append(f"{s['held_out']} held-back works: {s['val_psnr']:.2f} dB (weights of the best step)")
            if s.get("grain"):
                lines.append(f"grain: {s['grain']:.2f} of the picture's activity, painted back on decode")
        else:
            lines.append("untrained")
        p = self.prior
        if p is not None:
            lines.append(f"latent prior: {p.summary.get('works', '?')} works, {p.crop}x{p.crop}-cell compositions")
        return "\n".join(lines)

    def __repr__(self):
        return f"Autoencoder({self.name or self.model_id[:8]}: {self.describe().splitlines()[0]})"
