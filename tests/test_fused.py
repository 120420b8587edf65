"""The fused oneDNN conv + ReLU path for CPU inference: same values as the eager ops, used only
without autograd, and a clean fall-back when the private op fails."""
import pytest
import torch
import torch.nn.functional as F

from autoencoder_atelier.models import fused

from helpers import tiny_ae

pytestmark = pytest.mark.skipif(not fused._check(), reason="this torch build has no fused oneDNN convolution")


def _eager(x, w, b, stride, residual):
    y = F.conv2d(x.float(), w.float(), b.float(), stride, 1)
    return F.relu(y + residual.float() if residual is not None else y)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 0.05)])
@pytest.mark.parametrize("stride,residual", [(1, False), (1, True), (2, False)])
def test_fused_matches_eager(dtype, tol, stride, residual):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 10, 12, generator=g).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(6, 6, 3, 3, generator=g) / 6, torch.randn(6, generator=g)
    r = x if residual else None
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        got = fused.conv_relu(x, w, b, 1, stride, residual=r)
    assert got.dtype == dtype
    assert (got.float() - _eager(x, w, b, stride, r)).abs().max() <= tol


def test_models_give_the_same_pictures_fused_and_eager(monkeypatch):
    """A whole conv model in inference (fused) against the same model with autograd on (eager ops)."""
    ae = tiny_ae("conv", downscale=4)
    g = torch.Generator().manual_seed(1)
    for m in ae.model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.2, generator=g)
    x = torch.rand(2, 3, 32, 48, generator=g).contiguous(memory_format=torch.channels_last)
    calls = []
    real = fused._fused
    monkeypatch.setattr(fused, "_fused", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fast = ae.model.decode(ae.model.encode(x))
    assert calls, "inference did not take the fused path"
    calls.clear()
    slow = ae.model.decode(ae.model.encode(x))   # grad enabled: eager ops only
    assert not calls
    assert (fast - slow).abs().max() < 1e-5


def test_a_failing_fused_call_runs_eager(monkeypatch):
    def broken(*a):
        raise RuntimeError("not on this build")
    monkeypatch.setattr(fused, "_fused", broken)
    x = torch.rand(1, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(4, 4, 3, 3), torch.randn(4)
    with torch.no_grad():
        got = fused.conv_relu(x, w, b)
    assert torch.allclose(got, _eager(x, w, b, 1, None), atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (2, 1, 6, 6)])
def test_ambiguous_layouts_run_eager_and_keep_the_fast_path(shape):
    """A 1x1 map or a single channel is both NCHW- and NHWC-contiguous; oneDNN's NCHW path has no bf16
    residual add, so these run eager, and a tiny image does not switch the fast path off for big ones."""
    c = shape[1]
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(c, c, 3, 3) / 3, torch.randn(c)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = fused.conv_relu(x, w, b, residual=x)
    assert (got.float() - _eager(x, w, b, 1, x)).abs().max() < 0.1
    assert fused._usable is True


def test_the_codec_takes_the_fused_path_in_comfyui_inference_mode(monkeypatch):
    """ComfyUI runs every prompt in inference mode: encode and decode there use the fused calls."""
    from autoencoder_atelier.models import codec
    calls = []
    real = fused._fused
    monkeypatch.setattr(fused, "_fused", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        ae = tiny_ae("conv", downscale=4)
        y = codec.decode(ae, codec.encode(ae, torch.rand(1, 32, 32, 3)))
    assert y.shape == (1, 32, 32, 3) and len(calls) >= 4
