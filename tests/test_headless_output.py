"""What the headless runner shows: which model a loader uses, model cards under their own label, progress
bars that log lines do not run into, and a missing Load Image file named as missing."""
import io
import logging
import os
import re

import pytest

from autoencoder_atelier.headless import cli, runner
from autoencoder_atelier.headless.core_nodes import LoadImage
from autoencoder_atelier.models import procedural, storage
from helpers import tiny_ae

TRAIN = {
    "1": {"class_type": "AtelierLoadImageFolder", "inputs": {"folder": "art", "size": 32, "mode": "center-crop",
                                                             "count": 0}},
    "2": {"class_type": "AtelierNewAutoencoder", "inputs": {"architecture": "conv", "latent_channels": 4,
                                                            "downscale": "4", "width": 8, "image_size": 64,
                                                            "seed": 0}},
    "3": {"class_type": "AtelierTrainAutoencoder", "inputs": {"autoencoder": ["2", 0], "images": ["1", 0],
                                                              "steps": 40, "batch_size": 4, "learning_rate": 0.005,
                                                              "seed": 0, "loss": "mse", "crop_size": 16}},
    "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}},
}


def test_a_missing_load_image_file_is_named_as_missing_with_the_input_folder(tmp_dirs):
    with pytest.raises(ValueError) as e:
        LoadImage().load_image("nope.png")
    msg = str(e.value)
    assert "no image file" in msg and str(tmp_dirs.input) in msg and "--input-dir" in msg
    assert "re-save" not in msg


def test_loaders_name_their_model_and_the_newest_one_and_cards_get_their_own_label(tmp_dirs, caplog, capsys):
    for i in (1, 2):   # an old model and a newer one, as after the demo and a training run of one's own
        storage.save_autoencoder(tiny_ae("conv", latent_channels=4), str(tmp_dirs.models / f"m_0000{i}.safetensors"))
    os.utime(tmp_dirs.models / "m_00001.safetensors", (1, 1))
    prompt = {"1": {"class_type": "AtelierLoadAutoencoder", "inputs": {"ae_name": "m_00001.safetensors"}},
              "2": {"class_type": "AtelierSaveAutoencoder", "inputs": {"autoencoder": ["1", 0],
                                                                      "filename_prefix": "copy"}}}
    with caplog.at_level(logging.INFO):
        cli.print_outputs(prompt, runner.run(prompt, progress=False))
    assert ("node 1 (AtelierLoadAutoencoder) uses model m_00001.safetensors; the newest model is "
            "m_00002.safetensors: pick it with --set 1.ae_name=m_00002.safetensors") in caplog.text
    out = capsys.readouterr().out
    assert "model card of m_00001.safetensors:\n  Autoencoder Atelier" in out
    assert re.search(r"^saved  .*copy_00001\.safetensors$", out, re.M) and "\nmodel  " not in out


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_log_lines_never_share_a_line_with_the_progress_bar(tmp_dirs, monkeypatch):
    pytest.importorskip("tqdm")
    procedural.write_folder(str(tmp_dirs.input / "art"), count=4, size=32)
    term = FakeTerminal()
    monkeypatch.setattr("sys.stderr", term)
    handler = logging.StreamHandler(term)   # what the command line's logging.basicConfig sets up
    root = logging.getLogger()
    root.addHandler(handler)
    monkeypatch.setattr(root, "level", logging.INFO)
    try:
        runner.run(TRAIN)
    finally:
        root.removeHandler(handler)
    segments = re.split(r"[\r\n]", term.getvalue())
    steps = [s for s in segments if "train step" in s]
    assert len(steps) == 20 and all(s.startswith("train step") for s in steps)
    assert any("node 3" in s and "40/40" in s for s in segments)   # the bar itself was drawn
