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

from . import interrupt, validation
from .adversary import Adversary, adaptive_weight
from .corruption import corrupt
from .dataset import WorkFolder
from .grain import add_grain, fit_gain
from .latent_stats import latent_statistics
from .losses import last_loss, psnr, reconstruction_loss
from .optim import adamw, load_optimizer_state, optimizer_state
from .precision import NAMES
from .threads import one_thread
from .train_setup import (OUT_OF_MEMORY, TrainingError, check_settings, out_of_memory, training_crop, training_images,
                          training_precision)
from .train_setup import AUTO_CROP_MAX, memory_needed  # noqa: F401  (training's API, imported from here by callers)

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 50   # steps between "last good" copies kept for NaN recovery
KEPT_HISTORY = 100_000   # loss values training keeps (the latest), well under storage.MAX_FILE_HISTORY
PREVIEW_SECONDS = 3.0  # how often a live reconstruction preview is due
VALIDATE_EVERY = 50   # steps between validation scores (also at the start and the end of a run)
SHARP_SLACK_DB = 0.5  # sharp keeps its latest validated weights within this much of the best held-out PSNR


@dataclass
class TrainSettings:
    """Every training option with its default: the Train node's widgets take their defaults from here."""

    steps: int = 500
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0
    loss: str = "mse"
    crop_size: int = 0        # 0: auto (train_setup.AUTO_CROP of the image side); at least the image side: whole
    kl_weight: float = 0.01   # variational models only: pull of the latents toward N(0, 1)
    warmup: int = 50          # only when training starts from step 0
    flip: bool = True         # random horizontal flips (off for digits, text, asymmetric subjects)
    precision: str = "auto"   # "auto": bf16 autocast where faster, fp16 on older GPUs, else fp32 (precision.py)
    corruption: str = "none"  # restoration training: damage the input, score against the clean image
    corruption_strength: float = 0.5
    validation: bool = True   # hold back a few works (validation.py) and keep the best-scoring step's weights
    sharp_warmup: int = 200   # sharp: the adversarial term counts from this global step (the discriminator trains
    #                           from the start, the autoencoder on plain reconstruction until then)


def _check_backward(grad):
    interrupt.check()


def _check_forward_and_backward(module, args):
    interrupt.check()
    if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
        args[0].register_hook(_check_backward)


class Trainer:
    def __init__(self, autoencoder, images, settings, device=None, free_memory=lambda: None):
        """``free_memory`` hands cached GPU memory back after running out of it (the caller knows how). The
        set-up phases (train_setup.py) run first, with Cancel checked between them: each can take seconds on a
        busy machine."""
        s = settings
        check_settings(s, autoencoder.model)
        interrupt.check()
        self.settings = s
        self.device = torch.device(device or "cpu")
        self.free_memory = free_memory
        self.dataset = images if isinstance(images, WorkFolder) else None
        self.data, self.val = training_images(images, s, self.device, free_memory)
        self.val_input = None
        interrupt.check()
        self.crop = training_crop(autoencoder, images, s, self.device)
        self.autocast = training_precision(autoencoder, s, self.device)
        interrupt.check()
        # channels_last lets oneDNN/cuDNN pick their fast convolution kernels.
        self.memory_format = type(autoencoder.model).memory_format
        with torch.inference_mode(False), one_thread():   # copies of the model and the works (threads.py)
            self.ae = autoencoder.clone()
            self.net = self.ae.model.to(self.device, memory_format=self.memory_format)
            self.net.train()
            # Once, not every batch: the images in the model's own channels (luma for grayscale models).
            if self.dataset is None:
                self.data = self.net.to_model_channels(self.data)
            if self.val is not None:
                self.val = self.net.to_model_channels(self._whole(self.val.to(self.device)))
                # Restoration training is scored on restoring: the held-back works damaged once, the same each time.
                self.val_input = corrupt(self.val, s.corruption, s.corruption_strength,
                                         torch.Generator().manual_seed(s.seed))
            self.opt = adamw(self.net.parameters(), s.learning_rate)
            load_optimizer_state(self.opt, self.ae.state.optimizer)
            # sharp: the discriminator resumes from the file; other losses leave a saved one untouched.
            self.adversary = Adversary(self.net.channels, self.ae.state.adversary, self.device,
                                       self.net.downscale, s.seed) if s.loss == "sharp" else None
            # The layer the adversarial weight is balanced at (VQGAN): the last Conv2d registered, which for
            # conv models is the linear path's dec_linear, not the conv pyramid's last layer (bench/RESULTS.md,
            # "Sharpness at 48x": balancing there instead is the lead for issue 16).
            self.last_layer = [m for m in self.net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight \
                if self.adversary else None
        self.scaler = self._grad_scaler() if self.autocast == torch.float16 else None
        self.start_step = self.ae.state.step
        self.history = list(self.ae.state.loss_history)
        self.adv_history = list(self.ae.state.adv_history)
        self.val_history = [list(v) for v in self.ae.state.val_history]
        if self.start_step == 0 and s.steps > 0 and self.net.starts_from_pca:
            # A fresh model starts from the best linear code of these very images (PCA) (not of the held-back
            # ones), fitted on whole images, as a linear code would encode them, and on at most ~16M pixels so
            # big paintings do not exhaust memory.
            interrupt.check()
            with torch.inference_mode(False):
                if self.dataset is None:
                    f, (h, w) = self.net.downscale, self.data.shape[-2:]
                    n = max(1, min(256, (1 << 24) // (h * w)))
                    works = validation.centre_crop(self.data[:n], h // f * f, w // f * f)
                else:   # works read per step (Load Dataset Folder): centre crops of the training crop's size
                    works = self.sample_images(max(1, min(256, (1 << 24) // (self.crop[0] * self.crop[1]))))
                self.net.init_linear_from(works)
            interrupt.check()

    # -- setup -------------------------------------------------------------------------
    def _whole(self, x):
        """Whole works as validation, previews and the reconstruction grid show them: centre crops at most
        validation.MAX_SIDE a side (trimmed to the downscale), or a dense model's own size."""
        h, w = x.shape[-2:]
        if self.net.fixed_size:
            return validation.centre_crop(x, *self.crop)
        f, side = self.net.downscale, validation.MAX_SIDE
        return validation.centre_crop(x, min(h, side) // f * f, min(w, side) // f * f)

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
        """One optimisation step (i counts from 0 within this run). Returns (reconstruction loss, weighted
        adversarial term or None), or None if a loss or gradient was not finite (``self.failed`` says whose)."""
        s = self.settings
        lr = self.learning_rate(i)
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, g = self.batch(self.start_step + i)
        damaged = corrupt(x, s.corruption, s.corruption_strength, g)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            recon, kl = self.net.training_forward(damaged, generator=g)
        recon = recon.float()
        # Score what the artist will see (decode clamps to 0..1) but keep the gradient flowing
        # (straight-through), so overshooting pure black or white costs nothing.
        recon = recon + (recon.clamp(0, 1) - recon).detach()
        rec = reconstruction_loss(s.loss, recon, x)
        loss = plain = rec if kl is None else rec + s.kl_weight * kl
        adversarial = self.adversary is not None and self.start_step + i >= s.sharp_warmup
        adv = None
        self.failed = "autoencoder"
        if adversarial and torch.isfinite(loss):
            # The discriminator runs in float32: it is small, and its gradient steers the picture.
            g_loss, g_recon = self.adversary.generator_grad(recon, g)
            weight = adaptive_weight(rec, g_recon, recon, self.last_layer)
            adv = weight * g_loss
            if not (torch.isfinite(adv) and torch.isfinite(g_recon).all()):
                self.failed = "discriminator"
                return None
            # A term whose gradient at recon is the weighted adversarial one: the autoencoder's backward pass
            # carries it without running through the discriminator again.
            loss = loss + (recon * (weight * g_recon)).sum()
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
        if self.adversary is not None:   # it learns through the warm-up, so it has a useful verdict when heard
            self.failed = "discriminator"
            if self.adversary.step(x, recon, g, lr) is None:
                return None
        self.failed = None
        return plain.item(), None if adv is None else adv.item()

    def run(self, on_step=None):
        """Train ``settings.steps`` steps and return the trained clone.

        ``on_step(done, total, loss)`` is called after every step (it may ask for ``preview``); an exception
        it raises (ComfyUI's Cancel) propagates and the input model is left as it was. Running out of memory
        raises a TrainingError saying which batch size fits. With a validation split the weights of the
        best-scoring step are kept (``self.best``), as nanoGPT keeps its best checkpoint.
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
            good = self.best = self._snapshot(0)
            self._validate(0)
            for i in range(total):
                out = self.step(i)
                checkpoint = (i + 1) % SNAPSHOT_EVERY == 0 or i + 1 == total
                # A finite loss does not prove the update it made was finite: check the weights too.
                if out is None or (checkpoint and not self._weights_finite()):
                    self._recover(good, i)
                    break
                loss, adv = out
                self.history.append(loss)
                if self.adversary is not None:
                    self.adv_history.append(adv or 0.0)
                if checkpoint:
                    good = self._snapshot(i + 1)
                if (i + 1) % VALIDATE_EVERY == 0 or i + 1 == total:
                    self._validate(i + 1, good if checkpoint else None)
                if on_step is not None:
                    on_step(i + 1, total, loss)
            else:
                end = good
                if "val" in self.best and self.best["step"] < total:
                    end = self.best
                    log.info("kept the weights of step %d: held-back works %.2f dB there, %.2f dB at step %d",
                             self.start_step + end["step"], self.best["val"], self.val_history[-1][1],
                             self.start_step + total)
                self._adopt(end)
            return self._finish()

    def _validate(self, i, snapshot=None):
        """Score the held-back works after step i of this run; remember the best step's full state."""
        if self.val is None:
            return
        v, at = validation.score(self.net, self.val, self.val_input), self.start_step + i
        if not self.val_history or self.val_history[-1][0] != at:   # a resumed run's step 0 is scored already
            self.val_history.append([at, v])
        # sharp trades a little PSNR for texture by design: keep only steps where the adversary had its say,
        # and the latest of them whose PSNR is near the best (the best PSNR would favour the blurriest).
        # A run that ends before the warm-up never trains adversarially: it keeps its best step, as mse does.
        sharp = self.adversary is not None and self.start_step + self.settings.steps > self.settings.sharp_warmup
        warmup = self.settings.sharp_warmup if sharp else 0
        if at < warmup:
            return
        if "val" in self.best and self.start_step + self.best["step"] >= warmup:   # a step after the warm-up is kept
            self.peak = max(self.peak, v)   # the best held-out PSNR since the warm-up, in this run
            worse = v < self.peak - SHARP_SLACK_DB if sharp else v <= self.best["val"]
            if worse:
                return
        else:
            self.peak = v
        self.best = snapshot or self._snapshot(i)
        self.best["val"] = v

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
        if not all(torch.isfinite(p).all() for p in self.net.parameters()):
            self.failed = "autoencoder"
        elif self.adversary is not None and not self.adversary.finite():
            self.failed = "discriminator"
        return self.failed is None

    def _snapshot(self, i):
        """Everything a resumable model holds after step i of this run."""
        with one_thread():   # copies (threads.py)
            snap = {"step": i, "weights": copy.deepcopy(self.net.state_dict()),
                    "optimizer": optimizer_state(self.opt), "history": len(self.history),
                    "adv_history": len(self.adv_history),
                    "adversary": self.adversary.state() if self.adversary else None, "loss_scale": None}
        if self.scaler is not None:
            sd = self.scaler.state_dict()
            snap["loss_scale"] = [sd["scale"], sd["_growth_tracker"]]
        return snap

    def _adopt(self, snap, keep_optimizer=True):
        """Make the clone what it was at a snapshot: the kept best step, the last good one, or the end."""
        self.net.load_state_dict(snap["weights"])
        st = self.ae.state
        st.step = self.start_step + snap["step"]
        st.optimizer = snap["optimizer"] if keep_optimizer else None
        st.loss_scale = snap["loss_scale"] if keep_optimizer else None
        if self.adversary is not None:
            st.adversary = dict(snap["adversary"], optimizer=snap["adversary"]["optimizer"] if keep_optimizer else None)
            self.adversary.load(st.adversary)
        del self.history[snap["history"]:]
        del self.adv_history[snap["adv_history"]:]
        self.val_history = [v for v in self.val_history if v[0] <= st.step]

    def _recover(self, good, failed_at):
        # Moments that led to a blow-up are not worth keeping.
        self._adopt(good, keep_optimizer=False)
        who = "the discriminator" if self.failed == "discriminator" else "training"
        msg = (f"{who} blew up (NaN/infinite values) at step {self.start_step + failed_at + 1}; kept the "
               f"weights from step {self.start_step + good['step']}. Lower the learning rate "
               f"(now {self.settings.learning_rate:g})"
               + (" or set precision to fp32 (fp16 overflows more easily)." if self.scaler is not None else "."))
        log.warning(msg)
        self.ae.state.summary["stopped_early"] = msg

    def _finish(self):
        self.net.eval()
        st = self.ae.state
        st.loss_history = self.history[-KEPT_HISTORY:]
        st.adv_history = self.adv_history[-KEPT_HISTORY:]
        st.val_history = self.val_history[-KEPT_HISTORY:]
        sample = self.sample_images()
        with torch.no_grad():
            recon = self.net.reconstruct(sample)
        quality = psnr(recon, sample)
        st.summary.update({
            "steps": st.step, "data_size": len(self.dataset) if self.dataset else int(self.data.shape[0]),
            "image_size": list(self.crop if self.dataset else self.data.shape[-2:]), "crop": list(self.crop),
            "loss": self.settings.loss,
            "batch_size": self.settings.batch_size, "learning_rate": self.settings.learning_rate,
            "precision": NAMES[self.autocast],
            "corruption": self.settings.corruption,
            "psnr": round(quality, 3), "held_out": 0 if self.val is None else int(self.val.shape[0]),
        })
        kept = [v for s_, v in st.val_history if s_ == st.step]
        if kept:   # the held-back works' PSNR with the weights kept
            st.summary["val_psnr"] = round(kept[-1], 3)
        else:
            st.summary.pop("val_psnr", None)
        if st.loss_history:
            st.summary["final_loss"] = last_loss(st.loss_history)
        st.summary.pop("grain", None)   # fitted to the decoder as it was: a new one gets its own, or none
        if self.settings.loss == "sharp" and not self.net.fixed_size:
            st.summary["grain"] = round(self._grain_gain(sample), 4)
        # The reconstructions output shows what Decode will give: with the grain just fitted.
        self.reconstructions = _pictures(sample), _pictures(add_grain(recon, st.summary.get("grain", 0.0)))
        st.latent_stats = latent_statistics(self.net, self.data if self.dataset is None else self.sample_images(64),
                                            self.crop)
        if self.dataset is not None:
            self.dataset.release()
        return self.ae

    @torch.no_grad()
    def _grain_gain(self, sample):
        """grain.py's gain, on the held-back works (detail lost on works it never saw is what decoding new ones
        loses), else on the sample of training works."""
        works = sample if self.val is None else self.val
        inputs = works if self.val_input is None else self.val_input
        decoded = torch.cat([self.net.reconstruct(a) for a in inputs.split(16)])
        return fit_gain(decoded, works)

    def sample_images(self, n=8):
        """A fixed set of (whole) works used for previews and the reconstruction grid."""
        if self.dataset is not None:
            crops = self.dataset.centre_crops(self.settings.seed, n, self.crop)
            return self.net.to_model_channels(crops.to(self.device))
        return self._whole(self.data[:n])

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
