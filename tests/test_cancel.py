"""Cancel reaches every long phase: the precision measurement, the PCA start, inside the first training step,
the latent statistics at the end, tiles of a big encode/decode, and walks. Each phase calls the check
(bridge.check_interrupted, through models.interrupt), and a Cancel there changes nothing."""
import pytest
import torch

from autoencoder_atelier.models import latent_stats, precision, tiling
from autoencoder_atelier.models.networks import ConvAutoencoder
from autoencoder_atelier.models.train import Trainer
from autoencoder_atelier.nodes import bridge

from helpers import model_digest, procedural, tiny_ae
from test_reliability import Interrupted, call


@pytest.fixture
def phases(monkeypatch):
    """Wraps the long phases so every check_interrupted call records which phase it came from."""
    seen, current = [], []

    def wrap(owner, name, label):
        real = getattr(owner, name)

        def inside(*a, **k):
            current.append(label)
            try:
                return real(*a, **k)
            finally:
                current.pop()
                seen.append(f"after {label}")
        monkeypatch.setattr(owner, name, inside)

    wrap(ConvAutoencoder, "init_linear_from", "pca")
    wrap(Trainer, "step", "step")
    wrap(latent_stats, "encode_batches", "latent statistics")
    wrap(precision, "_conv_seconds", "precision measurement")
    wrap(tiling, "tiled", "tiles")
    monkeypatch.setattr(bridge, "check_interrupted", lambda: seen.append(current[-1] if current else "between"))
    return seen


def test_training_checks_in_set_up_inside_the_first_step_and_in_latent_statistics(phases):
    call("AtelierTrainAutoencoder", autoencoder=tiny_ae("conv"), images=procedural(4, 32), steps=2, batch_size=2,
         learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    assert "step" in phases and "latent statistics" in phases
    first_step = phases.index("step")
    assert "after pca" in phases[:first_step] and phases[phases.index("after pca") + 1] == "between"
    assert phases.index("between") < phases.index("after pca")  # before the PCA too


def test_the_precision_measurement_checks(phases, monkeypatch):
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    precision.cpu_bf16_speedups()
    assert "precision measurement" in phases
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    monkeypatch.setattr(bridge, "check_interrupted", lambda: (_ for _ in ()).throw(Interrupted()))
    with pytest.raises(Interrupted):
        precision.cpu_bf16_speedups()
    assert precision._cpu_speedups is None  # measured again next time, not recorded as a failure


def test_tiled_encode_and_decode_and_walks_check(phases, monkeypatch):
    ae = tiny_ae("conv")
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 64 << 10)  # force tiles
    (z,) = call("AtelierEncode", autoencoder=ae, images=procedural(1, 256))
    assert phases.count("tiles") >= 2
    phases.clear()
    call("AtelierDecode", autoencoder=ae, latent=z)
    assert phases.count("tiles") >= 2
    phases.clear()
    call("AtelierLatentWalk", keyframes={"samples": torch.randn(2, 8, 4, 4)}, frames=5, method="slerp",
         easing="linear", loop=False)
    assert len(phases) >= 5  # one check per frame (the node holds its own reference to walk)


@pytest.mark.parametrize("phase", ["between", "step", "latent statistics"])
def test_cancel_in_any_training_phase_changes_nothing(phase, monkeypatch, tmp_dirs):
    def check():
        if current[0] == phase:
            raise Interrupted()

    current = ["between"]

    def mark(owner, name, label):
        real = getattr(owner, name)

        def inside(*a, **k):
            current[0] = label
            try:
                return real(*a, **k)
            finally:
                current[0] = "between"
        monkeypatch.setattr(owner, name, inside)

    mark(ConvAutoencoder, "init_linear_from", "pca")
    mark(Trainer, "step", "step")
    mark(latent_stats, "encode_batches", "latent statistics")
    monkeypatch.setattr(bridge, "check_interrupted", check)
    ae, images = tiny_ae("conv"), procedural(4, 32)
    before = model_digest(ae)
    with pytest.raises(Interrupted):
        call("AtelierTrainAutoencoder", autoencoder=ae, images=images, steps=2, batch_size=2, learning_rate=0.001,
             seed=0, loss="mse", crop_size=16)
    assert model_digest(ae) == before and not any(tmp_dirs.models.iterdir())
    # no Cancel hooks are left on the network
    assert all(not m._forward_pre_hooks for m in ae.model.modules())


def test_load_image_folder_checks_before_every_file(tmp_path, monkeypatch):
    from PIL import Image
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    checks = []
    monkeypatch.setattr(bridge, "check_interrupted", lambda: checks.append(1))
    call("AtelierLoadImageFolder", folder=str(tmp_path), size=8, mode="resize", count=0)
    assert len(checks) == 3


def test_cancel_reaches_the_backward_pass(monkeypatch):
    """On a busy machine the backward pass alone can take seconds: it checks as it reaches each block."""
    in_backward = []
    real_backward = torch.Tensor.backward

    def backward(self, *a, **k):
        in_backward.append(True)
        try:
            return real_backward(self, *a, **k)
        finally:
            in_backward.pop()

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    seen = []
    monkeypatch.setattr(bridge, "check_interrupted", lambda: seen.append(bool(in_backward)))
    call("AtelierTrainAutoencoder", autoencoder=tiny_ae("conv"), images=procedural(4, 32), steps=1, batch_size=2,
         learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    assert seen.count(True) >= 3
    monkeypatch.setattr(bridge, "check_interrupted", lambda: (_ for _ in ()).throw(Interrupted()) if in_backward
                        else None)
    ae = tiny_ae("conv")
    before = model_digest(ae)
    with pytest.raises(Interrupted):
        call("AtelierTrainAutoencoder", autoencoder=ae, images=procedural(4, 32), steps=1, batch_size=2,
             learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    assert model_digest(ae) == before


def test_set_up_copies_run_on_one_thread_and_leave_the_thread_count_alone(monkeypatch):
    """On a busy 2-core machine a copy of the model split over two threads took 0.6 s, on one 0.02 s, with no
    Cancel check possible inside: the set-up's copies and snapshots run on one thread."""
    from autoencoder_atelier.models import train as train_module
    from autoencoder_atelier.models.autoencoder import Autoencoder
    seen = {}

    def record(owner, name, label):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, **k: seen.setdefault(label, torch.get_num_threads()) and
                            real(*a, **k))
    record(Autoencoder, "clone", "clone")
    record(train_module, "optimizer_state", "snapshot")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_module.train(tiny_ae("conv"), procedural(4, 32), train_module.TrainSettings(steps=1, batch_size=2))
        assert seen == {"clone": 1, "snapshot": 1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
