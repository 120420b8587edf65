"""The loss curve: readable axes, and one "last loss" figure shared with the model card."""
import numpy as np
import pytest

from autoencoder_atelier.models import storage
from autoencoder_atelier.models.losses import last_loss, loss_label, smoothed_loss
from autoencoder_atelier.models.plots import _log_ticks, _step_ticks, loss_curve
from autoencoder_atelier.models.train import TrainSettings, train
from helpers import procedural, tiny_ae


@pytest.mark.parametrize("lo, hi", [(0.0017, 0.05), (0.0036, 0.0043), (0.004, 0.00401), (1e-5, 1.0),
                                    (0.00078, 0.00135), (0.5, 4.9)])
def test_the_log_axis_has_at_least_three_labels_inside_the_range_and_none_far_apart(lo, hi):
    ticks = sorted(_log_ticks(np.log10(lo), np.log10(hi)))
    assert 3 <= len(ticks) <= 10 and all(lo * 0.999 <= t <= hi * 1.001 for t in ticks)
    # no half of the axis without a label (a 0.0008-0.00135 range once had none above 0.001)
    mid = (np.log10(lo) + np.log10(hi)) / 2
    assert np.log10(ticks[0]) < mid < np.log10(ticks[-1])


@pytest.mark.parametrize("n", [2, 7, 60, 600, 12345, 1_000_000])
def test_the_step_axis_has_round_labels(n):
    ticks = _step_ticks(n)
    assert 2 <= len(ticks) <= 10 and ticks[0] == 0 and ticks[-1] <= n
    if n >= 7:
        assert len(ticks) >= 3


def test_the_smoothed_line_is_a_running_mean_and_ends_at_the_last_loss():
    h = [1.0] * 30 + [3.0] * 30
    s = smoothed_loss(h)
    assert s[0] == 1.0 and s[29] == 1.0 and s[-1] == 3.0 and 1.0 < s[40] < 3.0
    assert last_loss(h) == 3.0 and last_loss([]) is None


def test_the_model_card_and_the_curve_give_the_same_last_loss(tmp_path):
    ae = train(tiny_ae("conv", latent_channels=4), procedural(6, 32, seed=5),
               TrainSettings(steps=30, batch_size=4, learning_rate=5e-3, crop_size=16))
    history = ae.state.loss_history
    assert ae.state.summary["final_loss"] == pytest.approx(np.mean(history[-20:]))
    assert ae.state.summary["final_loss"] != pytest.approx(history[-1])   # one noisy step is not the figure
    label = loss_label(last_loss(history))
    assert label in ae.describe()
    path = str(tmp_path / "m.safetensors")
    storage.save_autoencoder(ae, path)
    assert label in storage.card_text(storage.load_autoencoder(path))
    img = loss_curve(history)
    assert img.shape == (1, 360, 640, 3) and float(img.std()) > 0.05
