"""speedups.accelerate: the fast modules compute the plain (TAESD-style) network's function with its parameters."""
import pytest
import torch

from autoencoder_atelier.models import speedups
from autoencoder_atelier.models.layers import Block
from autoencoder_atelier.models.networks import build_network

from helpers import tiny_config


def pair(**cfg):
    """A plain network with busy weights (its conv pyramid contributing) and an accelerated copy of it."""
    config = tiny_config("conv", **cfg)
    plain = build_network(config)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    fast = build_network(config)
    fast.load_state_dict(plain.state_dict())
    return plain, speedups.accelerate(fast)


@pytest.mark.parametrize("cfg", [dict(downscale=8, blocks=1), dict(downscale=4, blocks=2), dict(downscale=1)])
def test_same_function_forward_and_backward(cfg):
    plain, fast = pair(**cfg)
    assert any(isinstance(m, speedups.UpConv) for m in fast.modules()) == (cfg["downscale"] > 2)
    assert not any(type(m) is Block for m in fast.modules())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ya, _ = plain.training_forward(x)
    yb, _ = fast.training_forward(x.contiguous(memory_format=torch.channels_last))
    assert (ya - yb).abs().max() < 1e-5 and ya.std() > 0.01
    ya.square().mean().backward()
    yb.square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name
    with torch.no_grad():   # inference: the fused oneDNN path where this torch has it
        x = x.contiguous(memory_format=torch.channels_last)
        assert (plain.decode(plain.encode(x)) - fast.decode(fast.encode(x))).abs().max() < 1e-4


def test_accelerate_keeps_names_and_reach_and_is_idempotent():
    plain, fast = pair(downscale=8)
    keys = list(fast.state_dict())
    assert keys == list(plain.state_dict())   # files and optimizer state are the same either way
    assert fast.context_cells() == plain.context_cells()
    kinds = [type(m) for m in fast.modules()]
    assert speedups.accelerate(fast) is fast and [type(m) for m in fast.modules()] == kinds


def test_off_the_cpu_the_swapped_modules_run_the_plain_ops(monkeypatch):
    """What a GPU runs (the plain ops inside the swapped classes) is the same function, gradients included."""
    plain, fast = pair(downscale=8, blocks=2)
    monkeypatch.setattr(speedups, "on_cpu", lambda x: False)
    calls = []
    monkeypatch.setattr(speedups, "conv_relu", lambda *a, **k: calls.append(1))   # must not be reached
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ya, _ = plain.training_forward(x)
    yb, _ = fast.training_forward(x)
    assert not calls and (ya - yb).abs().max() < 1e-5 and ya.std() > 0.01
    ya.square().mean().backward()
    yb.square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name
