"""Training: one loop for every architecture, resumable from the state saved with the weights.

The input Autoencoder is never touched: the trainer works on a clone inside
``torch.inference_mode(False)`` (ComfyUI runs every prompt in inference mode) and
returns it. Batches are drawn from in-memory images (an IMAGE) or a lazily read folder (models/dataset.py)
with random crops and flips,
seeded by (seed, global step) so a resumed run draws exactly what an unbroken one would.
The trainer also makes the live previews and the final reconstructions, and turns running out
of memory into a TrainingError that says which batch size fits.
"""
import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import torch

from . import formats, interrupt, memory
from .corruption import CORRUPTIONS, corrupt
from .errors import AtelierError
from .dataset import WorkFolder
from .latent_stats import latent_statistics
from .losses import LOSSES, last_loss, psnr, reconstruction_loss
from .networks import build_network
from .precision import NAMES, autocast_dtype, resumed_precision, slowdown

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 50   # steps between "last good" copies kept for NaN recovery
KEPT_HISTORY = 100_000   # loss values training keeps (the latest), well under storage.MAX_FILE_HISTORY
PREVIEW_SECONDS = 3.0  # how often a live reconstruction preview is due
MAX_LEARNING_RATE = 10.0  # far beyond useful; keeps AdamW's float32 arithmetic from overflowing
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5 has only the latter
# The CPU allocator's failures arrive as plain RuntimeErrors (or MemoryError from numpy and Python).
CPU_OUT_OF_MEMORY = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory",
                     "not enough memory")


def out_of_memory(e):
    """"GPU memory" or "memory" when ``e`` is running out of it (on a GPU or on the CPU), else None."""
    if isinstance(e, OUT_OF_MEMORY):
        return "GPU memory"
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(t in str(e) for t in CPU_OUT_OF_MEMORY)):
        return "memory"
    return None


class TrainingError(AtelierError):
    """Settings or data that training cannot use; the message says how to fix it."""


@dataclass
class TrainSettings:
    """Every training option with its default: the Train node's widgets take their defaults from here."""

    steps: int = 500
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0
    loss: str = "mse"
    crop_size: int = 128      # random square crops of this side (crop_of); 0: whole images
    kl_weight: float = 0.01   # variational models only: pull of the latents toward N(0, 1)
    warmup: int = 50          # only when training starts from step 0
    flip: bool = True         # random horizontal flips (off for digits, text, asymmetric subjects)
    precision: str = "auto"   # "auto": bf16 autocast where faster, fp16 on older GPUs, else fp32 (precision.py)
    corruption: str = "none"  # restoration training: damage the input, score against the clean image
    corruption_strength: float = 0.5


def step_bytes_per_image(config, crop):
    """Memory one training image of ``crop`` costs in a step: every layer's output, kept for the backward
    pass, counted on the meta device (nothing allocated). Measured on the CPU: 178 MB for 4 crops of 128
    (width 32) against 192 MB estimated; in-place activations make up for the gradients."""
    total = [0]

    def count(_module, _inputs, out):
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel()

    with torch.device("meta"):
        net = build_network(config)
        hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
        try:
            net.reconstruct(torch.empty(1, config["channels"], *crop))
        except (RuntimeError, NotImplementedError):  # an operation without a meta kernel: a rough figure
            total[0] = 24 * config["width"] * crop[0] * crop[1]
        for h in hooks:
            h.remove()
    return total[0] * 4


def _check_backward(grad):
    interrupt.check()


def _check_forward_and_backward(module, args):
    interrupt.check()
    if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
        args[0].register_hook(_check_backward)


def adamw(params, lr):
    """AdamW, fused into one kernel per tensor where this torch has it (CPU since 2.4): its step
    is ~10x faster than the per-operation loop, which matters for small models and busy machines."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)


def crop_of(net, crop_size, h, w):
    """The training crop (h, w) for images of h x w."""
    if net.fixed_size:
        side = net.image_size
        if h < side or w < side:
            raise TrainingError(f"this dense model needs {side}x{side} images but got {w}x{h}; set the "
                                f"image loader's size to {side} or make a new model with image_size {h}")
        return side, side
    f = net.downscale
    ch, cw = (min(crop_size, h), min(crop_size, w)) if crop_size > 0 else (h, w)
    ch, cw = ch // f * f, cw // f * f
    if ch == 0 or cw == 0:
        raise TrainingError(f"images of {w}x{h} are smaller than the model's downscale of {f}; "
                            "use larger images or a smaller downscale")
    return ch, cw


def data_crop(net, images, crop_size):
    """The crop for an IMAGE batch or a dataset (whose works differ in size, so it needs a crop_size)."""
    if isinstance(images, WorkFolder):
        if crop_size <= 0 and not net.fixed_size:
            raise TrainingError("a dataset's works differ in size, so training needs random crops: set crop_size "
                                "(e.g. 256)")
        side = net.image_size if net.fixed_size else crop_size
        return crop_of(net, crop_size, side, side)
    return crop_of(net, crop_size, *images.shape[1:3])


def memory_needed(autoencoder, images, settings):
    """Device bytes training needs: weights, gradients and AdamW's two moments, the IMAGE batch (a dataset's
    works stay on the CPU), and a step's activations. Asked of ComfyUI before training (bridge.compute_device)."""
    if not isinstance(images, WorkFolder) and not (isinstance(images, torch.Tensor) and images.ndim == 4):
        return 0   # not images at all: the Trainer says what is wrong
    ch, cw = data_crop(autoencoder.model, images, settings.crop_size)
    resident = 0 if isinstance(images, WorkFolder) else images[..., :3].numel() * 4
    step = step_bytes_per_image(autoencoder.config, (ch, cw)) * settings.batch_size
    return int(4 * autoencoder.nbytes() + resident + step)


class Trainer:
    def __init__(self, autoencoder, images, settings, device=None, free_memory=lambda: None):
        """``free_memory`` hands cached GPU memory back after running out of it (the caller knows how)."""
        s = settings
        if s.loss not in LOSSES:
            raise TrainingError(f"unknown loss {s.loss!r}; choose one of {', '.join(LOSSES)}")
        if s.corruption not in CORRUPTIONS or not 0 <= s.corruption_strength <= 1:
            raise TrainingError(f"corruption must be one of {', '.join(CORRUPTIONS)} with a strength in 0..1")
        if s.steps < 0 or s.batch_size < 1 or not 0 < s.learning_rate <= MAX_LEARNING_RATE:
            raise TrainingError(f"steps must be >= 0, batch_size >= 1 and learning_rate between 0 and "
                                f"{MAX_LEARNING_RATE:g} (got {s.steps}, {s.batch_size}, {s.learning_rate})")
        self.settings = s
        self.device = torch.device(device or "cpu")
        self.free_memory = free_memory
        self.dataset = images if isinstance(images, WorkFolder) else None
        self.data, kind = None, None
        try:
            with torch.inference_mode(False):   # a copy autograd can use (ComfyUI runs prompts in inference mode)
                if self.dataset is None:
                    self.data = formats.image_to_bchw(images, "refuse", TrainingError).to(self.device)
        except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
            kind = out_of_memory(e)
            if not kind:
                raise
        if kind:   # answered here, once the exception and the tensors its traceback holds are gone
            free_memory()
            raise TrainingError(f"ran out of {kind} putting the training images on the "
                                f"{'GPU' if kind == 'GPU memory' else 'device'}; load fewer or smaller images "
                                "(Load Image Folder's count and size), or use Load Dataset Folder")
        interrupt.check()   # Cancel between every set-up phase: each can take seconds on a busy machine
        self.crop = data_crop(autoencoder.model, images, s.crop_size)
        per_image = step_bytes_per_image(autoencoder.config, self.crop)
        try:
            memory.check("batch_size", s.batch_size, lambda b: b * per_image, advice="lower crop_size",
                         device=self.device)
        except memory.MemoryBudgetError as e:
            raise TrainingError(str(e)) from None
        try:
            recorded = autoencoder.state.summary.get("precision") if autoencoder.state.step else None
            setting = resumed_precision(s.precision, recorded, self.device)
            if setting != s.precision:
                log.info("resuming in %s, the precision this model was trained in (choose another to change it)",
                         setting)
            self.autocast = autocast_dtype(setting, self.device, autoencoder.config["architecture"])
        except ValueError as e:
            raise TrainingError(str(e)) from None
        slow = slowdown(self.autocast, self.device)
        if slow:
            log.warning("precision %s %s; precision auto picks the fastest", s.precision, slow)
        interrupt.check()
        # channels_last lets oneDNN/cuDNN pick their fast convolution kernels.
        self.memory_format = type(autoencoder.model).memory_format
        with torch.inference_mode(False):
            self.ae = autoencoder.clone()
            self.net = self.ae.model.to(self.device, memory_format=self.memory_format)
            self.net.train()
            # Once, not every batch: the images in the model's own channels (luma for grayscale models).
            if self.dataset is None:
                self.data = self.net.to_model_channels(self.data)
            self.opt = adamw(self.net.parameters(), s.learning_rate)
            self._restore_optimizer(self.ae.state.optimizer)
        self.scaler = self._grad_scaler() if self.autocast == torch.float16 else None
        self.start_step = self.ae.state.step
        self.history = list(self.ae.state.loss_history)
        if self.start_step == 0 and s.steps > 0 and self.net.starts_from_pca:
            # A fresh model starts from the best linear code of these very images (PCA),
            # fitted on at most ~16M pixels so big paintings do not exhaust memory.
            n = max(1, min(256, (1 << 24) // (self.crop[0] * self.crop[1])))
            interrupt.check()
            with torch.inference_mode(False):
                self.net.init_linear_from(self.sample_images(n=n))
            interrupt.check()

    # -- setup -------------------------------------------------------------------------
    def _restore_optimizer(self, saved):
        if not saved:
            return
        params = list(self.net.parameters())
        state = {}
        for i, p in enumerate(params):
            entry = saved.get(i)
            if entry is None or entry["exp_avg"].shape != p.shape:
                log.warning("saved optimizer state does not fit this model; starting the optimizer afresh")
                return
            # Moments in their parameter's memory layout (channels_last): the fused step pairs them elementwise.
            state[i] = {k: torch.empty_like(p).copy_(v) if k != "step" else v.clone() for k, v in entry.items()}
        sd = self.opt.state_dict()
        sd["state"] = state
        self.opt.load_state_dict(sd)

    def _grad_scaler(self):
        """fp16 gradients underflow unless the loss is scaled up; the scale resumes where it stopped."""
        try:
            scaler = torch.amp.GradScaler(self.device.type)
        except (AttributeError, TypeError, RuntimeError):
            raise TrainingError(f"fp16 training on {self.device.type} needs a newer torch (2.3 or later); "
                                "choose precision auto or fp32") from None
        if self.ae.state.loss_scale:
            scale, tracker = self.ae.state.loss_scale
            scaler.load_state_dict({**scaler.state_dict(), "scale": float(scale), "_growth_tracker": int(tracker)})
        return scaler

    def _optimizer_state(self):
        sd = self.opt.state_dict()["state"]
        return {i: {k: v.detach().to("cpu").clone() for k, v in st.items()} for i, st in sd.items()}

    # -- batches -----------------------------------------------------------------------
    def _generator(self, step):
        return torch.Generator().manual_seed((self.settings.seed * 1_000_003 + step) % (2 ** 63))

    def batch(self, step):
        """The training batch for a global step: deterministic in (seed, step)."""
        g = self._generator(step)
        b = self.settings.batch_size
        if self.dataset is not None:
            x = self.dataset.crops(self.settings.seed, step, b, self.crop, g).to(self.device)
            x = self._flip(self.net.to_model_channels(x), b, g)
            return x.contiguous(memory_format=self.memory_format), g
        n = self.data.shape[0]
        idx = torch.randint(n, (b,), generator=g)
        (h, w), (ch, cw) = self.data.shape[-2:], self.crop
        top = torch.randint(h - ch + 1, (b,), generator=g)
        left = torch.randint(w - cw + 1, (b,), generator=g)
        if (ch, cw) == (h, w):  # whole images (dense models): one gather instead of a slice per image
            x = self.data.index_select(0, idx.to(self.device))
        else:
            x = torch.stack([self.data[i, :, t:t + ch, l:l + cw]
                             for i, t, l in zip(idx.tolist(), top.tolist(), left.tolist())])
        return self._flip(x, b, g).contiguous(memory_format=self.memory_format), g

    def _flip(self, x, b, g):
        flip = torch.rand(b, generator=g) < (0.5 if self.settings.flip else 0.0)
        if self.settings.flip:
            x = torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        return x

    def learning_rate(self, i):
        """Linear warmup (fresh models only), then cosine decay to 10% over this run."""
        s = self.settings
        base = s.learning_rate
        warm = min(s.warmup, s.steps // 10) if self.start_step == 0 else 0
        if i < warm:
            return base * (i + 1) / warm
        t = (i - warm) / max(1, s.steps - warm)
        return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    # -- the loop ----------------------------------------------------------------------
    def step(self, i):
        """One optimisation step (i counts from 0 within this run). Returns the loss, or None if it was not finite."""
        s = self.settings
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate(i)
        x, g = self.batch(self.start_step + i)
        damaged = corrupt(x, s.corruption, s.corruption_strength, g)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            recon, kl = self.net.training_forward(damaged, generator=g)
        recon = recon.float()
        # Score what the artist will see (decode clamps to 0..1) but keep the gradient flowing
        # (straight-through), so overshooting pure black or white costs nothing.
        recon = recon + (recon.clamp(0, 1) - recon).detach()
        loss = reconstruction_loss(s.loss, recon, x)
        if kl is not None:
            loss = loss + s.kl_weight * kl
        if not torch.isfinite(loss):
            return None
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if not torch.isfinite(torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)):
                return None
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            # fp16 gradients that overflow are routine, not a blow-up: the scaler skips this update
            # and lowers the scale.
            self.scaler.step(self.opt)
            self.scaler.update()
        return loss.item()

    def run(self, on_step=None):
        """Train ``settings.steps`` steps and return the trained clone.

        ``on_step(done, total, loss)`` is called after every step (it may ask for ``preview``); an exception
        it raises (ComfyUI's Cancel) propagates and the input model is left as it was. Running out of memory
        raises a TrainingError saying which batch size fits.
        """
        self._next_preview = time.monotonic() + PREVIEW_SECONDS
        try:
            return self._train(on_step)
        except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
            kind = out_of_memory(e)
            if not kind:
                raise
        raise self._out_of_memory(kind)   # outside the handler: the failed step's tensors are released first

    def _train(self, on_step):
        total = self.settings.steps
        self.ae.state.summary.pop("stopped_early", None)  # a note from an earlier run that blew up
        # Cancel inside a step too (on a busy machine one step takes seconds): before every block of the
        # network's forward pass, and as the backward pass reaches each block's input. Removed again before
        # the model is handed out.
        blocks = [m for half in ("encoder", "decoder") for m in getattr(self.net, half, self.net).children()]
        hooks = [m.register_forward_pre_hook(_check_forward_and_backward) for m in blocks]
        try:
            return self._loop(total, on_step)
        finally:
            for h in hooks:
                h.remove()

    def _loop(self, total, on_step):
        with torch.inference_mode(False):
            good = self._snapshot(0)
            for i in range(total):
                loss = self.step(i)
                checkpoint = (i + 1) % SNAPSHOT_EVERY == 0 or i + 1 == total
                # A finite loss does not prove the update it made was finite: check the weights too.
                if loss is None or (checkpoint and not self._weights_finite()):
                    self._recover(good, i)
                    break
                self.history.append(loss)
                if checkpoint:
                    good = self._snapshot(i + 1)
                if on_step is not None:
                    on_step(i + 1, total, loss)
            else:
                self.ae.state.optimizer = self._optimizer_state()
                self.ae.state.step = self.start_step + total
                if self.scaler is not None:
                    sd = self.scaler.state_dict()
                    self.ae.state.loss_scale = [sd["scale"], sd["_growth_tracker"]]
            return self._finish()

    def _out_of_memory(self, kind):
        """Free memory, measure which batch size fits, and say so (``kind``: "GPU memory" or "memory"). The
        input model was never touched."""
        self.free_memory()
        asked, crop = self.settings.batch_size, "x".join(map(str, self.crop))
        fits = self._batch_size_that_fits()
        if fits == asked:
            what = ("a training step fits, but the rest (latent statistics, previews) did not; load fewer or "
                    "smaller images")
        elif fits:
            what = f"batch_size {fits} fits (measured), or lower crop_size"
        else:
            what = "not even batch_size 1 fits; lower crop_size or make a smaller model (width, blocks)"
        return TrainingError(f"ran out of {kind} training with batch_size {asked} on {crop} crops: {what}. "
                             f"{kind[0].upper() + kind[1:]} was freed and the input model is unchanged.")

    def _batch_size_that_fits(self):
        """The largest of batch_size, batch_size/2, ... 1 with which a step runs (0 if none). Trains this
        (discarded) clone a step or so, freeing memory after each failure."""
        b = self.settings.batch_size
        while b >= 1:
            self.settings = dataclasses.replace(self.settings, batch_size=b)
            try:
                with torch.inference_mode(False):
                    self.step(0)
                return b
            except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
                if not out_of_memory(e):
                    raise
            self.free_memory()
            b //= 2
        return 0

    def _weights_finite(self):
        return all(torch.isfinite(p).all() for p in self.net.parameters())

    def _snapshot(self, i):
        return i, copy.deepcopy(self.net.state_dict())

    def _recover(self, good, failed_at):
        i, weights = good
        self.net.load_state_dict(weights)
        # Moments that led to a blow-up are not worth keeping.
        self.ae.state.optimizer = self.ae.state.loss_scale = None
        self.ae.state.step = self.start_step + i
        del self.history[len(self.history) - (failed_at - i):]
        msg = (f"training blew up (NaN/infinite values) at step {self.start_step + failed_at + 1}; kept the "
               f"weights from step {self.start_step + i}. Lower the learning rate "
               f"(now {self.settings.learning_rate:g})"
               + (" or set precision to fp32 (fp16 overflows more easily)." if self.scaler is not None else "."))
        log.warning(msg)
        self.ae.state.summary["stopped_early"] = msg

    def _finish(self):
        self.net.eval()
        st = self.ae.state
        st.loss_history = self.history[-KEPT_HISTORY:]
        sample = self.sample_images()
        with torch.no_grad():
            recon = self.net.reconstruct(sample)
        quality = psnr(recon, sample)
        self.reconstructions = _pictures(sample), _pictures(recon)
        st.summary.update({
            "steps": st.step, "data_size": len(self.dataset) if self.dataset else int(self.data.shape[0]),
            "image_size": list(self.crop if self.dataset else self.data.shape[-2:]), "crop": list(self.crop),
            "loss": self.settings.loss,
            "batch_size": self.settings.batch_size, "learning_rate": self.settings.learning_rate,
            "precision": NAMES[self.autocast],
            "corruption": self.settings.corruption,
            "psnr": round(quality, 3),
        })
        if st.loss_history:
            st.summary["final_loss"] = last_loss(st.loss_history)
        st.latent_stats = latent_statistics(self.net, self.data if self.dataset is None else self.sample_images(64),
                                            self.crop)
        if self.dataset is not None:
            self.dataset.release()
        return self.ae

    def sample_images(self, n=8):
        """A fixed set of centre crops used for previews and the reconstructions."""
        if self.dataset is not None:
            crops = self.dataset.centre_crops(self.settings.seed, n, self.crop)
            return self.net.to_model_channels(crops.to(self.device))
        (h, w), (ch, cw) = self.data.shape[-2:], self.crop
        t, l = (h - ch) // 2, (w - cw) // 2
        return self.data[:n, :, t:t + ch, l:l + cw]

    def preview(self, done, total, n=4):
        """(originals, reconstructions) of ``n`` training crops as RGB [n,H,W,3] when a live preview is due
        (every PREVIEW_SECONDS, and always after the last step), else None. Big crops are slow to
        reconstruct, so previews are kept to about 1% of the training time."""
        start = time.monotonic()
        if done < total and start < self._next_preview:
            return None
        with torch.inference_mode(False), torch.no_grad():
            x = self.sample_images(n)
            pair = _pictures(x), _pictures(self.net.decode(self.net.encode(x)))
        self._next_preview = time.monotonic() + max(PREVIEW_SECONDS, 100 * (time.monotonic() - start))
        return pair


def _pictures(x):
    """[B,C,H,W] in model channels -> an RGB picture batch [B,H,W,3] float32 on the CPU."""
    return x.expand(-1, 3, -1, -1).movedim(1, -1).float().cpu()


def train(autoencoder, images, settings, device=None, on_step=None):
    return Trainer(autoencoder, images, settings, device).run(on_step)
