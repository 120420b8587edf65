"""The SWD metric (bench/swd.py) ranks pictures the way a person would: real < blurred < noise."""

import pytest
import torch

from helpers import procedural
import swd
from autoencoder_atelier.models.pyramid import blur as binomial_blur


@pytest.fixture(scope="module")
def sets():
    real_a, real_b = procedural(32, 64, seed=1), procedural(32, 64, seed=2)
    blurred = binomial_blur(binomial_blur(real_b.movedim(-1, 1).double())).movedim(1, -1).float()
    noise = torch.rand(real_b.shape, generator=torch.Generator().manual_seed(0))
    return real_a, real_b, blurred, noise


def test_swd_ranks_noise_above_blurred_above_real(sets):
    real_a, real_b, blurred, noise = sets
    real, blur, rand = (swd.swd(x, real_a, descriptors=2048) for x in (real_b, blurred, noise))
    assert len(real["levels"]) == 3                       # 64, 32 and 16 px
    assert real["mean"] < blur["mean"] < rand["mean"]
    # Blur removes the finest band's detail: that level shows it most.
    assert blur["levels"][0] - real["levels"][0] > blur["levels"][2] - real["levels"][2]
    assert swd.finest_level_swd(blurred, real_a, descriptors=2048) == blur["levels"][0]


def test_swd_is_deterministic_per_seed_and_takes_sets_of_different_sizes(sets):
    real_a, real_b, _, _ = sets
    once = swd.swd(real_b[:10], real_a, seed=3, descriptors=1024)
    assert once == swd.swd(real_b[:10], real_a, seed=3, descriptors=1024)
    assert swd.swd(real_b, real_a, seed=3, descriptors=1024) != swd.swd(real_b, real_a, seed=4, descriptors=1024)


def test_level_count_follows_the_picture_size():
    assert [swd.level_count(s) for s in (16, 31, 32, 96, 1024)] == [1, 1, 2, 3, 7]


def test_novelty_flags_copies(sets):
    real_a, real_b, _, _ = sets
    fresh = swd.novelty(real_b, real_a, real_b)
    assert fresh["median_ratio"] == pytest.approx(1.0)
    copies = swd.novelty(real_a[:8] + 0.001, real_a, real_b)
    assert copies["min_ratio"] < 0.05


def test_bad_sets_are_refused():
    with pytest.raises(ValueError, match="non-empty IMAGE"):
        swd.swd(torch.zeros(0, 32, 32, 3), torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match="too small"):
        swd.swd(torch.zeros(2, 8, 8, 3), torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="same picture size"):
        swd.swd(torch.zeros(2, 32, 32, 3), torch.zeros(2, 64, 64, 3))
