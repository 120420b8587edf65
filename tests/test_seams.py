"""The seam ratio (bench/seams.py) sees what SWD cannot: a picture painted one latent cell at a time."""

import pytest
import torch
import torch.nn.functional as F

from helpers import procedural, tiny_ae
from seams import grid_pattern_ratio, seam_ratio


def test_seam_ratio_is_near_one_for_works_and_high_for_blocks_at_the_cell_grid_only():
    works = procedural(16, 64, seed=3).movedim(-1, 1)
    blocks = F.interpolate(F.avg_pool2d(works, 8), scale_factor=8, mode="nearest")
    assert 0.8 < seam_ratio(works, 8) < 1.25
    assert seam_ratio(blocks, 8) > 100
    assert seam_ratio(blocks[..., 4:-4, 4:-4], 8) < 1e-3   # the same edges off the grid are inside cells there
    assert seam_ratio(works.movedim(1, -1), 8) == seam_ratio(works, 8)   # [N,H,W,C] reads the same


def test_grid_pattern_ratio_sees_one_texture_repeated_in_every_cell_and_nothing_off_the_grid():
    """The hatching a decoder can paint into every cell: faint (amplitude 0.03 of the 0..1 scale), no stronger at
    cell edges than inside them, and still far above the works' figure; the same hatch at a period of 7 px
    (not a divisor of the cell grid) leaves the figure where the works' is."""
    works = procedural(16, 64, seed=3).movedim(-1, 1)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    hatch = lambda period: 0.03 * torch.cos(2 * torch.pi * (yy - xx) / period)   # diagonal stripes
    plain = grid_pattern_ratio(works, 8)
    assert 0.7 < plain < 1.5
    assert grid_pattern_ratio(works + hatch(4), 8) > 3 * plain
    assert grid_pattern_ratio(works + hatch(7), 8) < 1.3 * plain
    assert seam_ratio(works + hatch(4), 8) < 1.25                  # the seam ratio cannot see it
    assert grid_pattern_ratio(works.movedim(1, -1), 8) == plain    # [N,H,W,C] reads the same
    with pytest.raises(ValueError, match="not whole 8-pixel cells"):
        grid_pattern_ratio(works[..., :60], 8)


def test_a_fresh_lapped_model_leaves_far_weaker_cell_edges_than_one_cell_decoding():
    from autoencoder_atelier.models.train import Trainer, TrainSettings
    works = procedural(20, 32, seed=4)
    ratios = {}
    for reach in (0, 1):
        net = Trainer(tiny_ae(linear_reach=reach, latent_channels=4), works, TrainSettings(steps=1, seed=0)).net
        with torch.no_grad():
            ratios[reach] = seam_ratio(net.decode(net.encode(works.movedim(-1, 1))), 4)
    assert ratios[1] < 0.6 * ratios[0], ratios
