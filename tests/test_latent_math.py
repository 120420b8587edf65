"""slerp, match_latent and mix: the maths behind Latent Mix."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoencoder_atelier.models.latent_math import MIX_MODES, match_latent, mix, slerp, walk
from autoencoder_atelier.models.pca import principal_components


def rand(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def norms(x):
    return x.reshape(x.shape[0], -1).double().norm(dim=1)


def test_slerp_endpoints_equal_the_inputs():
    a, b = rand(3, 4, 5, 5, seed=1), rand(3, 4, 5, 5, seed=2, scale=3.0)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)
    assert slerp(a, b, 0.3).dtype == torch.float32 and slerp(a, b, 0.3).shape == a.shape


def test_slerp_keeps_dtype_and_accepts_tensor_t():
    a, b = rand(2, 4, 3, 3, seed=1).half(), rand(2, 4, 3, 3, seed=2).half()
    out = slerp(a, b, torch.tensor(0.5, dtype=torch.float64))
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


@pytest.mark.parametrize("scale_b", [1.0, 0.1, 10.0])
def test_slerp_norm_follows_the_linear_interpolation_of_norms(scale_b):
    a, b = rand(4, 8, 4, 4, seed=3), rand(4, 8, 4, 4, seed=4, scale=scale_b)
    na, nb = norms(a), norms(b)
    for t in torch.linspace(0, 1, 21).tolist():
        expected = (1 - t) * na + t * nb
        got = norms(slerp(a, b, t))
        assert torch.all((got - expected).abs() <= 0.01 * expected), t


def test_slerp_moves_along_the_arc():
    """Angles to a and b split in proportion t: the defining property of slerp."""
    a, b = rand(1, 16, seed=5), rand(1, 16, seed=6)

    def angle(x, y):
        return math.acos(max(-1.0, min(1.0, float((x * y).sum() / (x.norm() * y.norm())))))

    total = angle(a, b)
    for t in (0.25, 0.5, 0.8):
        m = slerp(a, b, t)
        assert angle(a, m) == pytest.approx(t * total, abs=1e-4)
        assert angle(m, b) == pytest.approx((1 - t) * total, abs=1e-4)


@pytest.mark.parametrize("case", ["parallel", "antiparallel", "zero_a", "zero_b", "both_zero", "identical"])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_degenerate_pairs_fall_back_to_lerp(case, t):
    a = rand(2, 4, 3, 3, seed=7)
    b = {"parallel": 2.5 * a, "antiparallel": -0.5 * a, "zero_a": rand(2, 4, 3, 3, seed=8),
         "zero_b": torch.zeros_like(a), "both_zero": torch.zeros_like(a), "identical": a.clone()}[case]
    if case in ("zero_a", "both_zero"):
        a = torch.zeros_like(a)
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.lerp(a, b, t), atol=1e-5)


def test_degenerate_rows_do_not_affect_the_others():
    a = rand(3, 8, seed=9)
    b = rand(3, 8, seed=10)
    b[1] = -a[1]  # only the middle sample is antiparallel
    out = slerp(a, b, 0.5)
    assert torch.allclose(out[1], torch.zeros(8), atol=1e-6)
    assert torch.allclose(out[0], slerp(a[:1], b[:1], 0.5)[0]) and torch.allclose(out[2], slerp(a[2:], b[2:], 0.5)[0])
    assert norms(out[[0, 2]]).min() > 0.5 * norms(a[[0, 2]]).min()


finite = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=12), st.floats(0, 1))
def test_slerp_property_finite_and_norm_preserving(pairs, t):
    a = torch.tensor([[p[0] for p in pairs]])
    b = torch.tensor([[p[1] for p in pairs]])
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    na, nb, got = norms(a)[0].item(), norms(b)[0].item(), norms(out)[0].item()
    cos = float((a.double() * b.double()).sum() / max(na * nb, 1e-30))
    if na > 1e-3 and nb > 1e-3 and abs(cos) < 0.999:
        assert got == pytest.approx((1 - t) * na + t * nb, rel=0.01, abs=1e-4)
    else:  # near-degenerate: somewhere between the lerp and the slerp norm, never blown up
        assert got <= max(na, nb) * 1.01 + 1e-4


# -- match_latent / mix ---------------------------------------------------------------------

def test_match_latent_resizes_b_and_broadcasts_batches():
    a, b = rand(2, 4, 6, 8, seed=1), rand(1, 4, 3, 4, seed=2)
    ma, mb = match_latent(a, b)
    assert ma is a and mb.shape == (2, 4, 6, 8) and torch.equal(mb[0], mb[1])
    ma, mb = match_latent(rand(1, 4, 6, 8), rand(3, 4, 6, 8))
    assert ma.shape == mb.shape == (3, 4, 6, 8)
    same_a, same_b = rand(2, 4, 2, 2, seed=1), rand(2, 4, 2, 2, seed=2)
    ra, rb = match_latent(same_a, same_b)
    assert ra is same_a and rb is same_b  # nothing to do: no copies


def test_match_latent_refusals():
    with pytest.raises(ValueError, match="different channel counts \\(4 and 16\\)"):
        match_latent(rand(1, 4, 2, 2), rand(1, 16, 2, 2))
    with pytest.raises(ValueError, match="batches of 2 and 3 cannot be paired"):
        match_latent(rand(2, 4, 2, 2), rand(3, 4, 2, 2))


def test_match_latent_leaves_inputs_alone():
    a, b = rand(2, 4, 6, 8, seed=1), rand(1, 4, 3, 4, seed=2)
    a0, b0 = a.clone(), b.clone()
    match_latent(a, b)
    mix(a, b, 0.5, "difference-add", rand(1, 4, 2, 2, seed=3))
    assert torch.equal(a, a0) and torch.equal(b, b0)


@pytest.mark.parametrize("mode", MIX_MODES)
def test_every_mode_is_identity_like_at_factor_zero(mode):
    a, b = rand(2, 4, 3, 3, seed=1), rand(2, 4, 3, 3, seed=2)
    assert torch.allclose(mix(a, b, 0.0, mode), a, atol=1e-6)


def test_mix_modes_values():
    a, b, c = rand(2, 4, 3, 3, seed=1), rand(2, 4, 3, 3, seed=2), rand(2, 4, 3, 3, seed=3)
    assert torch.equal(mix(a, b, 1.0, "lerp"), b)
    assert torch.allclose(mix(a, b, 2.0, "add"), a + 2 * b)
    assert torch.allclose(mix(a, b, -1.0, "subtract"), a + b)
    assert torch.allclose(mix(a, b, 0.5, "difference-add", c), a + 0.5 * (b - c), atol=1e-6)
    assert torch.allclose(mix(a, b, 0.5, "difference-add"), a + 0.5 * (b - b.mean((-2, -1), keepdim=True)), atol=1e-6)
    with pytest.raises(ValueError, match="unknown mix mode 'blend'"):
        mix(a, b, 0.5, "blend")


# -- walk --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["slerp", "lerp"])
@pytest.mark.parametrize("easing", ["linear", "ease-in-out", "cosine"])
def test_walk_passes_through_every_keyframe(method, easing):
    keys = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    frames = walk(keys, 9, method, easing)            # 4 frames per segment: keys at 0, 4, 8
    assert frames.shape == (9, 4, 5, 6)
    for k, f in ((0, 0), (1, 4), (2, 8)):
        torch.testing.assert_close(frames[f], keys[k], rtol=0, atol=1e-6)


def test_walk_loop_returns_towards_the_start_without_repeating_it():
    keys = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    frames = walk(keys, 8, "lerp", "linear", loop=True)
    torch.testing.assert_close(frames[0], keys[0])
    torch.testing.assert_close(frames[4], keys[1])
    torch.testing.assert_close(frames[6], 0.5 * (keys[1] + keys[0]))   # on the way back
    assert not torch.allclose(frames[-1], keys[0])


def test_walk_slerp_keeps_norms_between_keyframes():
    keys = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(2))
    frames = walk(keys, 21, "slerp", "linear")
    n = frames.flatten(1).norm(dim=1)
    expected = torch.linspace(0, 1, 21) * (keys[1].norm() - keys[0].norm()) + keys[0].norm()
    assert ((n - expected).abs() / expected).max() < 0.01


def test_walk_needs_two_keyframes_and_frames():
    with pytest.raises(ValueError, match="at least 2 keyframe"):
        walk(torch.zeros(1, 2, 2, 2), 5)
    with pytest.raises(ValueError, match="at least 2 frames"):
        walk(torch.zeros(2, 2, 2, 2), 1)


@pytest.mark.parametrize("n, d", [(500, 48), (6, 300), (40, 40), (2, 5)])
def test_principal_components_are_those_of_the_svd_with_a_fixed_sign(n, d):
    rows = torch.randn(n, d, generator=torch.Generator().manual_seed(n)) * torch.linspace(0.1, 3, d)
    mean, components, s = principal_components(rows, 8)
    centred = rows.double() - rows.double().mean(0)
    _, s_svd, vt = torch.linalg.svd(centred, full_matrices=False)
    k = min(8, n - 1, d)
    assert components.shape == (k, d) and torch.allclose(mean, rows.double().mean(0))
    assert torch.allclose(s[:k], s_svd[:k], rtol=1e-9, atol=1e-9)
    assert torch.allclose(components.abs(), vt[:k].abs(), atol=1e-8)   # the same directions
    assert torch.allclose(components @ components.T, torch.eye(k, dtype=torch.float64), atol=1e-10)
    peaks = components.gather(1, components.abs().argmax(1, keepdim=True))
    assert (peaks > 0).all()   # the sign rule, whatever the solver returned


def test_principal_components_check_cancel_between_pieces_and_run_on_one_thread(monkeypatch):
    from autoencoder_atelier.models import interrupt, pca
    seen = []
    monkeypatch.setattr(pca, "CHUNK_FLOPS", 20 * 16 * 16)   # pieces of 20 rows
    monkeypatch.setattr(interrupt, "_hook", lambda: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)   # as on a 2-core machine (the tests run on one)
    try:
        principal_components(torch.rand(100, 16), 4)
        assert seen == [1] * 5 and torch.get_num_threads() == 2

        def cancel():
            raise KeyboardInterrupt
        monkeypatch.setattr(interrupt, "_hook", cancel)
        with pytest.raises(KeyboardInterrupt):
            principal_components(torch.rand(100, 16), 4)
        assert torch.get_num_threads() == 2   # restored on the way out
    finally:
        torch.set_num_threads(before)
