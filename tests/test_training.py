"""Training: it learns, it is pure (input untouched), deterministic, resumable, and safe."""
import copy
import math

import pytest
import torch

from autoencoder_atelier.models import formats, storage
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.losses import psnr, reconstruction_loss, ssim
from autoencoder_atelier.models.train import SNAPSHOT_EVERY, Trainer, TrainingError, TrainSettings, train
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge

from helpers import FAST, model_digest, procedural, refusal, tiny_ae, tiny_config, weights_equal


def reconstruction_mse(ae, imgs):
    x = imgs.movedim(-1, 1)
    with torch.no_grad():
        return torch.mean((ae.model.decode(ae.model.encode(x)) - x) ** 2).item()


class Cancelled(Exception):
    pass


def test_short_training_beats_the_mean_image_baseline():
    imgs = procedural(16, 32)
    baseline = torch.mean((imgs - imgs.mean(0, keepdim=True)) ** 2).item()
    ae = tiny_ae("conv", seed=0)
    assert reconstruction_mse(ae, imgs) > baseline  # an untrained model is worse than the mean image
    # Whole images and no held-back works: this checks what training can fit, not what generalises.
    trainer = Trainer(ae, imgs, TrainSettings(steps=100, batch_size=8, learning_rate=5e-3, seed=0, crop_size=32,
                                              validation=False))
    with torch.no_grad():  # a fresh conv model starts from a linear code of the images (PCA, lapped decoding)
        x = imgs.movedim(-1, 1)
        linear = torch.mean((trainer.net.decode(trainer.net.encode(x)) - x) ** 2).item()
    assert linear < 0.05 * baseline
    out = trainer.run()
    mse = reconstruction_mse(out, imgs)
    assert mse < 0.95 * linear, (mse, linear)   # training adds what a linear code cannot (lapped: the start is strong)
    h = out.state.loss_history
    assert len(h) == 100 and all(math.isfinite(v) for v in h)
    assert sum(h[-10:]) / 10 < 0.85 * h[0]
    s = out.state.summary
    assert s["steps"] == 100 and s["data_size"] == 16 and s["image_size"] == [32, 32] and s["crop"] == [32, 32]
    assert s["psnr"] > 10 * math.log10(1 / baseline)
    assert out.state.step == 100
    assert set(out.state.latent_stats) == {"mean", "cov"}
    assert out.state.latent_stats["mean"].shape == (8,) and out.state.latent_stats["cov"].shape == (8, 8)
    assert "trained 100 steps on 16 images" in out.describe()


def test_training_does_not_mutate_the_input_and_returns_a_new_model(images):
    ae = tiny_ae("conv")
    before = model_digest(ae)
    images_before = images.clone()
    out = train(ae, images, TrainSettings(steps=5, **FAST))
    assert model_digest(ae) == before
    assert torch.equal(images, images_before)
    assert out is not ae and out.model is not ae.model and out.state is not ae.state
    assert out.model_id == ae.model_id  # same lineage, so Decode accepts latents of either
    assert not weights_equal(out, ae)
    assert ae.state.step == 0 and ae.state.loss_history == [] and ae.state.optimizer is None
    assert not out.model.training


def test_training_inside_inference_mode(images):
    """ComfyUI runs every node in torch.inference_mode(); the model may even be created there."""
    with torch.inference_mode():
        ae = tiny_ae("conv")
        imgs = images.clone()
        assert imgs.is_inference()
        out = train(ae, imgs, TrainSettings(steps=4, **FAST))
        assert out.state.step == 4 and len(out.state.loss_history) == 4
        assert not weights_equal(out, ae)
        y = out.model.decode(out.model.encode(imgs.movedim(-1, 1)))
        assert torch.isfinite(y).all()
    # the result is an ordinary model: it trains again outside inference mode, and saves
    assert not any(p.is_inference() for p in out.model.parameters())
    again = train(out, images, TrainSettings(steps=2, **FAST))
    assert again.state.step == 6


def test_node_graph_in_inference_mode(images):
    new, trainer = NODE_CLASS_MAPPINGS["AtelierNewAutoencoder"](), NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    with torch.inference_mode():
        (ae,) = new.create("conv", 4, "4", 8, 32, 0)
        out, curve, grid = trainer.train(ae, images=images.clone(), steps=3, batch_size=4, learning_rate=0.005, seed=0,
                                          loss="mse")
    assert out.state.step == 3
    assert curve.ndim == 4 and curve.shape[0] == 1 and curve.shape[-1] == 3
    assert grid.ndim == 4 and grid.shape[-1] == 3 and 0 <= grid.min() and grid.max() <= 1


def test_batch_size_bigger_than_the_data():
    imgs = procedural(3, 32)
    out = train(tiny_ae("conv"), imgs, TrainSettings(steps=3, batch_size=16, learning_rate=5e-3))
    assert out.state.step == 3 and len(out.state.loss_history) == 3
    assert all(math.isfinite(v) for v in out.state.loss_history)
    assert out.state.summary["batch_size"] == 16 and out.state.summary["data_size"] == 3


def test_zero_steps_returns_a_usable_clone(images, tmp_path):
    ae = tiny_ae("conv")
    before = model_digest(ae)
    out = train(ae, images, TrainSettings(steps=0, **FAST))
    assert out is not ae and weights_equal(out, ae) and model_digest(ae) == before
    assert out.state.step == 0 and out.state.loss_history == []
    with torch.no_grad():
        y = out.model.decode(out.model.encode(images.movedim(-1, 1)))
    assert y.shape == (8, 3, 32, 32)
    # it can be saved, loaded and trained further
    loaded = storage.load_autoencoder(storage.save_autoencoder(out, tmp_path / "zero.safetensors"))
    assert train(loaded, images, TrainSettings(steps=2, **FAST)).state.step == 2


def test_same_seed_gives_bit_identical_weights(images):
    ae = tiny_ae("conv")
    s = TrainSettings(steps=6, **FAST)
    a, b = train(ae, images, s), train(ae, images, s)
    assert weights_equal(a, b)
    assert a.state.loss_history == b.state.loss_history
    c = train(ae, images, TrainSettings(steps=6, batch_size=4, learning_rate=5e-3, seed=1))
    assert not weights_equal(a, c)


@pytest.mark.parametrize("arch", ["conv", "conv-vae"])
def test_resume_after_save_and_load_is_bit_identical(arch, images, tmp_path):
    n, m = 30, 8
    first = train(tiny_ae(arch), images, TrainSettings(steps=n, **FAST))
    in_memory = train(first, images, TrainSettings(steps=m, **FAST))

    path = storage.save_autoencoder(first, tmp_path / "resume.safetensors")
    loaded = storage.load_autoencoder(path)
    assert loaded.state.step == n and loaded.state.optimizer is not None
    resumed = train(loaded, images, TrainSettings(steps=m, **FAST))

    assert weights_equal(in_memory, resumed)
    for i, st in in_memory.state.optimizer.items():
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(st[k], resumed.state.optimizer[i][k])
    assert resumed.state.step == n + m
    h = resumed.state.loss_history
    assert len(h) == n + m and h == in_memory.state.loss_history
    assert h[:n] == first.state.loss_history
    # a resumed run starts from the loaded weights: no fresh (PCA) initialisation
    t = Trainer(loaded, images, TrainSettings(steps=m, **FAST))
    assert all(torch.equal(a, b) for a, b in zip(t.net.state_dict().values(), loaded.model.state_dict().values()))


def test_resume_continues_the_optimizer_not_a_fresh_one(images):
    first = train(tiny_ae("conv"), images, TrainSettings(steps=10, **FAST))
    cont = train(first, images, TrainSettings(steps=3, **FAST))
    first.state.optimizer = None  # forget the moments: a different continuation
    fresh = train(first, images, TrainSettings(steps=3, **FAST))
    assert not weights_equal(cont, fresh)
    assert cont.state.optimizer[0]["step"].item() == 13


def poison(monkeypatch, ae, from_call):
    """Make the network's training output NaN from the ``from_call``-th step on."""
    real, calls = type(ae.model).training_forward, [0]

    def poisoned(self, x, generator=None):
        calls[0] += 1
        recon, kl = real(self, x, generator)
        return (recon * float("nan") if calls[0] >= from_call else recon), kl

    monkeypatch.setattr(type(ae.model), "training_forward", poisoned)


def test_a_loss_that_turns_nan_stops_early_with_finite_weights(images, monkeypatch):
    ae = tiny_ae("conv")
    poison(monkeypatch, ae, from_call=4)
    trainer = Trainer(ae, images, TrainSettings(steps=20, **FAST))
    start = copy.deepcopy(trainer.net.state_dict())   # after the fresh model's PCA initialisation
    out = trainer.run()
    msg = out.state.summary.get("stopped_early")
    assert msg and "NaN" in msg and "step 4" in msg and "learning rate" in msg.lower()
    assert out.state.step == 0 and out.state.loss_history == []   # back to the last snapshot (step 0)
    assert all(torch.equal(a, b) for a, b in zip(out.model.state_dict().values(), start.values()))
    assert out.state.optimizer is None
    with torch.no_grad():
        assert torch.isfinite(out.model.decode(out.model.encode(images.movedim(-1, 1)))).all()


def test_a_real_blow_up_from_a_huge_learning_rate_is_caught(images):
    out = train(tiny_ae("conv"), images, TrainSettings(steps=40, batch_size=4, learning_rate=10.0))
    assert "stopped_early" in out.state.summary
    assert all(torch.isfinite(p).all() for p in out.model.parameters())
    assert out.state.step < 40 and len(out.state.loss_history) == out.state.step


def test_snapshots_are_kept_and_used_after_a_late_blow_up(images, monkeypatch):
    ae = tiny_ae("conv")
    poison(monkeypatch, ae, from_call=SNAPSHOT_EVERY + 3)
    out = train(ae, images, TrainSettings(steps=SNAPSHOT_EVERY + 10, **FAST))
    assert out.state.step == SNAPSHOT_EVERY and len(out.state.loss_history) == SNAPSHOT_EVERY
    assert "stopped_early" in out.state.summary


def test_blow_up_on_the_last_step_is_caught(images, monkeypatch):
    """Non-finite weights after the final update (the loss of that step was still finite)."""
    real = Trainer.step

    def last_step_breaks_weights(self, i):
        loss = real(self, i)
        if i == self.settings.steps - 1:
            with torch.no_grad():
                next(self.net.parameters()).fill_(float("inf"))
        return loss

    monkeypatch.setattr(Trainer, "step", last_step_breaks_weights)
    out = train(tiny_ae("conv"), images, TrainSettings(steps=3, **FAST))
    assert "at step 3;" in out.state.summary["stopped_early"] and out.state.step == 0
    assert out.state.loss_history == []
    with torch.no_grad():
        assert torch.isfinite(out.model.decode(out.model.encode(images.movedim(-1, 1)))).all()


def test_float32_overflowing_learning_rate_is_refused(images):
    with pytest.raises(TrainingError, match="learning_rate"):
        train(tiny_ae("conv"), images, TrainSettings(steps=5, batch_size=4, learning_rate=1e39))


@pytest.mark.parametrize("lr", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_learning_rates_are_refused(images, lr):
    with pytest.raises(TrainingError, match="learning_rate"):
        train(tiny_ae("conv"), images, TrainSettings(steps=1, batch_size=4, learning_rate=lr))


def test_bad_settings_are_refused(images):
    ae = tiny_ae("conv")
    with pytest.raises(TrainingError, match="steps"):
        train(ae, images, TrainSettings(steps=-1))
    with pytest.raises(TrainingError, match="batch_size"):
        train(ae, images, TrainSettings(steps=1, batch_size=0))
    with pytest.raises(TrainingError, match="unknown loss 'ssim'"):
        train(ae, images, TrainSettings(steps=1, loss="ssim"))


def test_cancel_from_on_step_leaves_the_input_untouched(images):
    ae = train(tiny_ae("conv"), images, TrainSettings(steps=3, **FAST))  # with optimizer state and history
    before = model_digest(ae)
    seen = []

    def on_step(done, total, loss):
        seen.append((done, total))
        assert math.isfinite(loss)
        if done == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        train(ae, images, TrainSettings(steps=10, **FAST), on_step=on_step)
    assert seen == [(1, 10), (2, 10), (3, 10)]
    assert model_digest(ae) == before


def test_cancel_at_node_level_via_progress_bar(images, monkeypatch):
    calls = []

    class CancellingBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            calls.append(value)
            if value == 2:
                raise Cancelled("user pressed Cancel")

    monkeypatch.setattr(bridge, "progress_bar", lambda total: CancellingBar(total))
    ae = tiny_ae("conv")
    before, images_before = model_digest(ae), images.clone()
    node = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    with pytest.raises(Cancelled):
        with torch.inference_mode():
            node.train(ae, images=images, steps=50, batch_size=4, learning_rate=0.005, seed=0, loss="mse")
    assert calls == [1, 2]
    assert model_digest(ae) == before and torch.equal(images, images_before)


def test_node_reports_progress_and_final_preview(images, monkeypatch):
    updates = []

    class Bar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            updates.append((value, total, preview))

    monkeypatch.setattr(bridge, "progress_bar", lambda total: Bar(total))
    node = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    out, curve, grid = node.train(tiny_ae("conv"), images=images, steps=4, batch_size=4, learning_rate=0.005, seed=0,
                                  loss="l1", crop_size=16, flip=False)
    assert [u[0] for u in updates] == [1, 2, 3, 4] and all(u[1] == 4 for u in updates)
    fmt, img, size = updates[-1][2]  # the last step always carries a preview
    assert fmt == "JPEG" and img.size[0] > 0 and size == 512
    assert out.state.summary["crop"] == [16, 16] and out.state.summary["loss"] == "l1"
    assert grid.shape[0] == 1 and grid.shape[-1] == 3


def test_vae_trains_and_uses_its_kl_term(images):
    ae = tiny_ae("conv-vae")
    # fp32: the check below recomputes the KL outside autocast and compares to 1e-4
    s0 = TrainSettings(steps=2, kl_weight=0.0, precision="fp32", **FAST)
    s1 = TrainSettings(steps=2, kl_weight=1.0, precision="fp32", **FAST)
    # the KL of the very first batch, computed the way the trainer does
    t = Trainer(ae, images, s0)
    x, g = t.batch(0)
    with torch.no_grad():
        _, kl0 = t.net.training_forward(x, generator=g)
    assert kl0.item() > 1e-4
    h0 = train(ae, images, s0).state.loss_history
    h1 = train(ae, images, s1).state.loss_history
    assert h1[0] - h0[0] == pytest.approx(kl0.item(), rel=1e-4)
    # a strong KL weight pulls the latents toward N(0, 1)
    weak = train(ae, images, TrainSettings(steps=30, kl_weight=0.0, **FAST))
    strong = train(ae, images, TrainSettings(steps=30, kl_weight=1.0, **FAST))
    x = images.movedim(-1, 1)

    def kl_of(model):
        with torch.no_grad():
            m, lv = model.model.encode_moments(x)
        return (0.5 * (m.square() + lv.exp() - 1 - lv)).mean().item()

    assert kl_of(strong) < 0.5 * kl_of(weak)


def test_vae_beats_the_mean_image_baseline():
    imgs = procedural(16, 32)
    baseline = torch.mean((imgs - imgs.mean(0, keepdim=True)) ** 2).item()
    out = train(tiny_ae("conv-vae", seed=0), imgs, TrainSettings(steps=100, batch_size=8, learning_rate=5e-3,
                                                               kl_weight=1e-4))
    assert reconstruction_mse(out, imgs) < 0.8 * baseline
    h = out.state.loss_history
    assert sum(h[-10:]) < 0.75 * sum(h[:10])
    assert out.state.latent_stats["mean"].shape == (8,)


def test_dense_model_with_wrong_size_images_gives_a_clear_error():
    ae = tiny_ae("dense", image_size=16)
    with pytest.raises(TrainingError) as e:
        train(ae, procedural(4, 8), TrainSettings(steps=1))
    assert "16x16" in str(e.value) and "8x8" in str(e.value) and "image_size" in str(e.value)
    node = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    with pytest.raises(ValueError, match=refusal("AtelierTrainAutoencoder", "this dense model needs 16x16")):
        node.train(ae, images=procedural(4, 8), steps=1, batch_size=4, learning_rate=0.01, seed=0, loss="mse")


def test_dense_model_trains_on_larger_images_by_cropping():
    ae = tiny_ae("dense", image_size=16)
    out = train(ae, procedural(4, 24), TrainSettings(steps=3, batch_size=4, learning_rate=1e-2))
    assert out.state.summary["crop"] == [16, 16] and out.state.step == 3


def test_dense_and_grayscale_models_learn():
    imgs = procedural(16, 16)
    gray = imgs @ torch.tensor([0.299, 0.587, 0.114])
    baseline = torch.mean((gray - gray.mean(0, keepdim=True)) ** 2).item()
    dense = train(tiny_ae("dense", image_size=16), imgs, TrainSettings(steps=40, batch_size=8, learning_rate=1e-2))
    h = dense.state.loss_history
    assert sum(h[-5:]) / 5 < 0.8 * h[0]
    # No held-back works: this checks that a grayscale model fits, not that 40 steps beat its lapped start.
    conv = train(tiny_ae("conv", channels=1), imgs, TrainSettings(steps=40, batch_size=8, learning_rate=1e-2,
                                                                 validation=False))
    assert conv.state.loss_history[-1] < 0.05 * baseline


def test_images_smaller_than_the_downscale_are_refused():
    with pytest.raises(TrainingError, match="smaller than the model's downscale"):
        Trainer(tiny_ae("conv", downscale=16), procedural(2, 8), TrainSettings(steps=1))


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(0, 32, 32, 3), "empty"),
    (torch.zeros(32, 32, 3), r"\[B,H,W,C\]"),
    ("not an image", r"\[B,H,W,C\]"),
    (torch.zeros(2, 32, 32, 2), "2 channels"),
    (torch.full((2, 32, 32, 3), float("nan")), "NaN"),
])
def test_bad_image_batches_are_refused(bad, match):
    with pytest.raises(TrainingError, match=match):
        train(tiny_ae("conv"), bad, TrainSettings(steps=1))


def test_images_to_bchw_accepts_gray_and_rgba_and_copies():
    def images_to_bchw(images):   # as the trainer reads its images
        return formats.image_to_bchw(images, "refuse", TrainingError)

    rgba = torch.rand(2, 8, 8, 4)
    x = images_to_bchw(rgba)
    assert x.shape == (2, 3, 8, 8) and torch.equal(x, rgba[..., :3].movedim(-1, 1))
    gray = torch.rand(2, 8, 8, 1) * 2  # out of range values are clamped
    y = images_to_bchw(gray)
    assert y.shape == (2, 3, 8, 8) and y.max() <= 1
    y += 1
    assert gray.max() <= 2  # a copy, never a view of the input
    assert images_to_bchw(torch.rand(1, 8, 8, 3, dtype=torch.float16)).dtype == torch.float32


@pytest.mark.parametrize("loss", ["mse", "l1", "mse+ssim"])
def test_every_loss_trains(loss, images):
    out = train(tiny_ae("conv"), images, TrainSettings(steps=3, batch_size=4, learning_rate=5e-3, loss=loss))
    assert all(math.isfinite(v) and v > 0 for v in out.state.loss_history)


def test_batches_are_deterministic_per_global_step(images):
    t = Trainer(tiny_ae("conv"), images, TrainSettings(steps=1, crop_size=16))
    a, _ = t.batch(5)
    b, _ = t.batch(5)
    c, _ = t.batch(6)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (16, 3, 16, 16)


def test_a_resumed_run_draws_the_batches_an_unbroken_run_would(images):
    settings = TrainSettings(steps=1, batch_size=4, crop_size=16)
    fresh = Trainer(tiny_ae("conv"), images, settings)
    trained = train(tiny_ae("conv"), images, TrainSettings(steps=3, batch_size=4))
    resumed = Trainer(trained, images, settings)
    assert resumed.start_step == 3
    for step in (3, 4, 10):
        (x1, g1), (x2, g2) = fresh.batch(step), resumed.batch(step)
        assert torch.equal(x1, x2) and torch.equal(g1.get_state(), g2.get_state())


def test_learning_rate_schedule():
    t = Trainer(tiny_ae("conv"), procedural(2, 32), TrainSettings(steps=100, learning_rate=1.0, warmup=10))
    assert t.learning_rate(0) == pytest.approx(0.1)
    assert t.learning_rate(9) == pytest.approx(1.0)
    assert t.learning_rate(99) == pytest.approx(0.1, abs=0.01)
    assert all(t.learning_rate(i) >= t.learning_rate(i + 1) for i in range(10, 99))


def test_losses_and_metrics():
    a = torch.rand(2, 3, 16, 16)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-4)
    assert ssim(a, 1 - a).item() < 0.5
    assert reconstruction_loss("mse", a, a).item() == 0
    assert reconstruction_loss("mse+ssim", a, a).item() == pytest.approx(0.0, abs=1e-5)
    assert psnr(torch.full((1, 3, 4, 4), 0.1), torch.zeros(1, 3, 4, 4)) == pytest.approx(20.0, abs=1e-3)
    assert psnr(a, a) == pytest.approx(120.0)
    with pytest.raises(ValueError, match="unknown loss"):
        reconstruction_loss("ssim", a, a)
    tiny = torch.rand(1, 1, 4, 5)
    assert ssim(tiny, tiny).item() == pytest.approx(1.0, abs=1e-4)  # smaller window on tiny images


def test_trained_model_is_an_autoencoder_instance(images):
    out = train(tiny_ae("conv"), images, TrainSettings(steps=1, **FAST))
    assert isinstance(out, Autoencoder) and out.config == tiny_config("conv")


def test_dense_model_learns_mnist_digits():
    """The seed's use case, on the shared MNIST set when this checkout has it."""
    import numpy as np
    from helpers import shared_path
    data = np.load(shared_path("mnist", "mnist_test10k.npz"))["data"][:256]
    imgs = torch.from_numpy(data.astype(np.float32) / 255.0)[..., None].expand(-1, -1, -1, 3).contiguous()
    baseline = torch.mean((imgs - imgs.mean(0, keepdim=True)) ** 2).item()
    ae = tiny_ae("dense", image_size=28, width=64, latent_channels=16, channels=1)
    out = train(ae, imgs, TrainSettings(steps=150, batch_size=32, learning_rate=1e-2, flip=False))
    assert reconstruction_mse(out, imgs) < 0.8 * baseline


def test_pca_initialisation_is_for_plain_conv_models_only(images):
    for arch, expect_init in (("conv", True), ("conv-vae", False)):
        ae = tiny_ae(arch)
        t = Trainer(ae, images, TrainSettings(steps=1, **FAST))
        changed = not torch.equal(t.net.enc_linear.weight, ae.model.enc_linear.weight)
        assert changed == expect_init, arch


# Holes take longer to learn from the lapped start (it already re-makes what it is shown, holes too):
# +0.35 dB at 150 steps, +2.2 at 300 (one-cell decoding: +1.6, +2.5).
@pytest.mark.parametrize("kind,gain_db,steps", [("noise", 5.0, 150), ("holes", 1.0, 300)])
def test_restoration_training_repairs_damaged_held_out_images(kind, gain_db, steps):
    from autoencoder_atelier.models.corruption import corrupt
    from autoencoder_atelier.models.losses import psnr
    imgs = procedural(32, 48)
    ae = train(tiny_ae("conv", downscale=4, latent_channels=8, width=16), imgs[:24],
               TrainSettings(steps=steps, batch_size=8, learning_rate=3e-3, corruption=kind, corruption_strength=0.5))
    clean = imgs[24:].movedim(-1, 1)
    damaged = corrupt(clean, kind, 0.5, torch.Generator().manual_seed(123))
    with torch.no_grad():
        restored = ae.model.decode(ae.model.encode(damaged))
    assert psnr(restored, clean) > psnr(damaged, clean) + gain_db
    assert ae.state.summary["corruption"] == kind


@pytest.mark.parametrize("kind", ["noise", "holes", "blocks", "blur"])
def test_corruptions_damage_but_keep_shape_and_range(kind):
    from autoencoder_atelier.models.corruption import corrupt
    x = procedural(4, 32).movedim(-1, 1)
    y = corrupt(x, kind, 0.7, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(y, x)
    assert torch.equal(corrupt(x, kind, 0.0, torch.Generator()), x)
    with pytest.raises(TrainingError, match="corruption must be one of"):
        Trainer(tiny_ae("conv"), procedural(2, 32), TrainSettings(steps=1, corruption="smudge"))


@pytest.mark.parametrize("kind", ["noise", "holes", "blocks", "blur"])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 2), (3, 5)])
def test_corruptions_work_on_images_of_a_few_pixels(kind, h, w):
    """Found by the node fuzzer: blur at strength 0.5 shrank a 2x2 image to 0x0 and raised."""
    from autoencoder_atelier.models.corruption import corrupt
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    for strength in (0.5, 1.0):
        y = corrupt(x, kind, strength, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
