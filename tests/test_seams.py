"""The seam ratio (bench/seams.py) sees what SWD cannot: a picture painted one latent cell at a time."""

import torch
import torch.nn.functional as F

from helpers import procedural, tiny_ae
from seams import seam_ratio


def test_seam_ratio_is_near_one_for_works_and_high_for_blocks_at_the_cell_grid_only():
    works = procedural(16, 64, seed=3).movedim(-1, 1)
    blocks = F.interpolate(F.avg_pool2d(works, 8), scale_factor=8, mode="nearest")
    assert 0.8 < seam_ratio(works, 8) < 1.25
    assert seam_ratio(blocks, 8) > 100
    assert seam_ratio(blocks[..., 4:-4, 4:-4], 8) < 1e-3   # the same edges off the grid are inside cells there
    assert seam_ratio(works.movedim(1, -1), 8) == seam_ratio(works, 8)   # [N,H,W,C] reads the same


def test_a_fresh_lapped_model_leaves_far_weaker_cell_edges_than_one_cell_decoding():
    from autoencoder_atelier.models.train import Trainer, TrainSettings
    works = procedural(20, 32, seed=4)
    ratios = {}
    for reach in (0, 1):
        net = Trainer(tiny_ae(linear_reach=reach, latent_channels=4), works, TrainSettings(steps=1, seed=0)).net
        with torch.no_grad():
            ratios[reach] = seam_ratio(net.decode(net.encode(works.movedim(-1, 1))), 4)
    assert ratios[1] < 0.6 * ratios[0], ratios
