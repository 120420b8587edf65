"""Precision choices, and fp16 training with its loss scale (run here on the CPU, which has fp16
autocast too: the same code path a T4 or RTX 20xx takes with "auto")."""
import json
import math

import pytest
import torch

from autoencoder_atelier.models import precision, storage
from autoencoder_atelier.models.train import Trainer, TrainSettings, train

from helpers import procedural, tiny_ae, weights_equal

FP16 = dict(batch_size=4, learning_rate=5e-3, seed=0, precision="fp16")


@pytest.fixture
def gpu(monkeypatch):
    """Pretend to be a CUDA GPU with or without native bf16 (set .native)."""
    class Fake:
        native = True
        asked = []

        def is_bf16_supported(self, including_emulation=True):
            self.asked.append(including_emulation)
            return self.native or including_emulation   # torch's default counts emulation as support

    fake = Fake()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", fake.is_bf16_supported)
    return fake


def test_auto_picks_bf16_on_new_gpus_and_fp16_where_bf16_is_only_emulated(gpu):
    assert precision.autocast_dtype("auto", "cuda") is torch.bfloat16
    gpu.native = False   # a T4: torch.cuda.is_bf16_supported() alone would still say yes
    assert precision.autocast_dtype("auto", "cuda") is torch.float16
    assert gpu.asked and not any(gpu.asked)
    assert precision.inference_dtype({"architecture": "conv"}, "cuda") is None
    assert precision.autocast_dtype("auto", "cuda", "dense") is None


def test_explicit_choices_and_the_cpu(monkeypatch):
    assert precision.autocast_dtype("fp16", "cpu") is torch.float16
    assert precision.autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert precision.autocast_dtype("fp32", "cuda") is None
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    assert precision.autocast_dtype("auto", "cpu") is None   # no fp16 guesswork on processors
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16, fp16"):
        precision.autocast_dtype("fp8", "cpu")


@pytest.mark.parametrize("speedups,train,infer", [
    ((0.7, 0.8), None, None),                      # an Intel Xeon without AMX: bf16 is slower
    ((2.0, 2.1), torch.bfloat16, torch.bfloat16),  # AMD Zen 4: about 1.7x in training
    ((1.5, 1.1), None, torch.bfloat16),            # each use decides on its own figure
])
def test_auto_on_the_cpu_takes_bf16_only_where_it_measured_faster(monkeypatch, speedups, train, infer):
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    monkeypatch.setattr(precision, "_cpu_speedups", speedups)
    assert precision.autocast_dtype("auto", "cpu") is train
    assert precision.inference_dtype({"architecture": "conv"}, "cpu") is infer
    assert precision.autocast_dtype("bf16", "cpu") is torch.bfloat16   # an explicit choice stands


def test_the_cpu_measurement_runs_once_in_inference_mode_and_only_where_bf16_is_native(monkeypatch):
    calls = []
    real = precision._conv_seconds
    monkeypatch.setattr(precision, "_conv_seconds", lambda dtype: calls.append(dtype) or real(dtype, reps=1))
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    assert precision.autocast_dtype("auto", "cpu") is None and not calls   # nothing to measure
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    with torch.inference_mode():   # as ComfyUI runs every node
        first = precision.cpu_bf16_speedups()
        precision.inference_dtype({"architecture": "conv"}, "cpu")
        precision.autocast_dtype("auto", "cpu")
    assert sorted(set(calls), key=str) == [torch.bfloat16, torch.float32] and len(calls) == 4   # two turns, once
    assert all(0 < s < 100 and math.isfinite(s) for s in first)
    assert precision.cpu_bf16_speedups() == first


def test_fp16_training_learns_and_keeps_its_loss_scale():
    imgs = procedural(8, 32)
    out = train(tiny_ae("conv"), imgs, TrainSettings(steps=60, **FP16))
    h = out.state.loss_history
    assert len(h) == 60 and all(math.isfinite(v) for v in h)
    assert sum(h[-10:]) / 10 < 0.85 * h[0]
    assert out.state.summary["precision"] == "fp16" and "stopped_early" not in out.state.summary
    scale, tracker = out.state.loss_scale
    assert scale > 0 and 0 <= tracker < 2000
    assert all(p.dtype == torch.float32 for p in out.model.parameters())   # weights stay float32


def test_fp16_resume_after_save_and_load_is_bit_identical(tmp_path):
    imgs = procedural(8, 32)
    first = train(tiny_ae("conv"), imgs, TrainSettings(steps=20, **FP16))
    in_memory = train(first, imgs, TrainSettings(steps=8, **FP16))
    loaded = storage.load_autoencoder(storage.save_autoencoder(first, tmp_path / "fp16.safetensors"))
    assert loaded.state.loss_scale == first.state.loss_scale
    resumed = train(loaded, imgs, TrainSettings(steps=8, **FP16))
    assert weights_equal(in_memory, resumed)
    assert resumed.state.loss_history == in_memory.state.loss_history
    assert resumed.state.loss_scale == in_memory.state.loss_scale


def test_overflowing_fp16_gradients_skip_the_step_instead_of_stopping_training():
    imgs = procedural(8, 32)
    ae = train(tiny_ae("conv"), imgs, TrainSettings(steps=5, **FP16))
    ae.state.loss_scale = [1e30, 0]   # so large that every fp16 gradient overflows
    trainer = Trainer(ae, imgs, TrainSettings(steps=3, **FP16))
    out = trainer.run()
    assert weights_equal(out, ae)   # all three updates skipped...
    assert out.state.loss_scale[0] == pytest.approx(1e30 / 8)   # ...each halving the scale
    assert out.state.step == 8 and "stopped_early" not in out.state.summary
    assert ae.state.loss_scale == [1e30, 0]   # the input model is untouched


def test_an_fp16_blow_up_keeps_the_last_good_weights_and_suggests_fp32(monkeypatch):
    imgs = procedural(8, 32)
    ae = train(tiny_ae("conv"), imgs, TrainSettings(steps=5, **FP16))
    real = type(ae.model).training_forward

    def overflowing(self, x, **kw):   # an activation past fp16's range: a NaN loss, not a skipped step
        recon, kl = real(self, x, **kw)
        return recon * float("nan"), kl

    monkeypatch.setattr(type(ae.model), "training_forward", overflowing)
    out = train(ae, imgs, TrainSettings(steps=3, **FP16))
    msg = out.state.summary["stopped_early"]
    assert "at step 6" in msg and "precision to fp32" in msg
    assert out.state.step == 5 and weights_equal(out, ae) and out.state.loss_scale is None


@pytest.mark.parametrize("amx_fp16,warned", [(False, True), (True, False)])
def test_forcing_an_emulated_precision_warns(monkeypatch, caplog, amx_fp16, warned):
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: amx_fp16)
    with caplog.at_level("WARNING"):
        Trainer(tiny_ae("conv"), procedural(2, 16), TrainSettings(steps=1, **FP16))
    assert ("precision fp16 is emulated on this cpu" in caplog.text) == warned
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    caplog.clear()
    with caplog.at_level("WARNING"):
        Trainer(tiny_ae("conv"), procedural(2, 16), TrainSettings(steps=1, batch_size=2, precision="bf16"))
    assert "precision bf16 is emulated" in caplog.text


@pytest.mark.parametrize("speedup,warning", [(0.7, "precision bf16 trains 1.4x slower than fp32 on this processor"),
                                             (2.0, None)])
def test_forcing_bf16_where_it_measured_slower_warns(monkeypatch, caplog, speedup, warning):
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    monkeypatch.setattr(precision, "_cpu_speedups", (speedup, speedup))
    with caplog.at_level("WARNING"):
        Trainer(tiny_ae("conv"), procedural(2, 16), TrainSettings(steps=1, batch_size=2, precision="bf16"))
    assert (warning in caplog.text) if warning else "precision bf16" not in caplog.text


def test_a_failing_bf16_measurement_keeps_float32(monkeypatch, caplog):
    def broken(dtype):
        raise RuntimeError("no bf16 kernel")
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    monkeypatch.setattr(precision, "_conv_seconds", broken)
    with caplog.at_level("WARNING"):
        assert precision.autocast_dtype("auto", "cpu") is None
        assert precision.inference_dtype({"architecture": "conv"}, "cpu") is None
        assert "failed a test convolution" in precision.slowdown(torch.bfloat16, "cpu")
    assert "bf16 convolutions failed on this processor, using float32: no bf16 kernel" in caplog.text


# -- the same decision after a restart -----------------------------------------------------------

def test_the_measurement_is_kept_per_machine_and_torch_version(tmp_path, monkeypatch):
    cache = tmp_path / "sub" / "precision.json"
    monkeypatch.setenv(precision.CACHE_ENV, str(cache))
    calls = []

    def twice_as_fast(dtype):
        calls.append(dtype)
        return [1.0, 1.0] if dtype is torch.float32 else [0.5, 0.5]

    monkeypatch.setattr(precision, "_conv_seconds", twice_as_fast)
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    assert precision.cpu_bf16_speedups() == (2.0, 2.0) and len(calls) == 4
    table = json.loads(cache.read_text())
    assert table == {precision.machine_key(): [2.0, 2.0]}
    # a restart under load would measure 0.6x; the kept figure decides
    monkeypatch.setattr(precision, "_conv_seconds", lambda dtype: [1.0, 1.0] if dtype is torch.float32 else [1.7, 1.7])
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    assert precision.cpu_bf16_speedups() == (2.0, 2.0)
    # another torch version measures afresh and keeps both
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    assert precision.cpu_bf16_speedups()[1] < 1 and len(json.loads(cache.read_text())) == 2


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"KEY": "x"}', '{"KEY": [1e400, 1]}', ""])
def test_a_damaged_record_is_measured_again(tmp_path, monkeypatch, content):
    cache = tmp_path / "precision.json"
    cache.write_text(content.replace("KEY", precision.machine_key()))
    monkeypatch.setenv(precision.CACHE_ENV, str(cache))
    monkeypatch.setattr(precision, "_conv_seconds", lambda dtype: [1.0, 1.0] if dtype is torch.float32 else [0.5, 0.5])
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    assert precision.cpu_bf16_speedups() == (2.0, 2.0)


def test_a_read_only_cache_folder_still_measures(tmp_path, monkeypatch):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "file-not-folder" / "x.json"))
    (tmp_path / "file-not-folder").write_text("")
    monkeypatch.setattr(precision, "_conv_seconds", lambda dtype: [1.0, 1.0])
    monkeypatch.setattr(precision, "_cpu_speedups", None)
    assert precision.cpu_bf16_speedups() == (1.0, 1.0)


@pytest.mark.parametrize("recorded,native,expected", [("bf16", True, torch.bfloat16), ("fp32", True, None),
                                                      ("bf16", False, "auto"), (None, True, "auto"),
                                                      ("garbage", True, "auto")])
def test_resuming_keeps_the_models_precision_unless_forced(monkeypatch, recorded, native, expected):
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: native)
    monkeypatch.setattr(precision, "_cpu_speedups", (0.5, 0.5))   # auto alone would pick fp32 here
    ae = tiny_ae("conv")
    ae.state.step, ae.state.summary = 10, {"precision": recorded} if recorded else {}
    t = Trainer(ae, procedural(2, 16), TrainSettings(steps=1, batch_size=2, precision="auto"))
    assert t.autocast is (None if expected == "auto" else expected)
    forced = Trainer(ae, procedural(2, 16), TrainSettings(steps=1, batch_size=2, precision="fp32"))
    assert forced.autocast is None
    if recorded == "bf16" and native:   # and it is written into the model again
        out = t.run()
        assert out.state.summary["precision"] == "bf16"
