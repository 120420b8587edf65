"""The benchmark machinery (not the figures: speed is measured by `atelier.py bench`, never asserted here)."""
import json
import os

import pytest

import suite
import timing

from autoencoder_atelier.headless import cli


def test_interleaved_runs_in_turns_and_takes_medians():
    order = []
    values = {"a": iter([5, 1, 3]), "b": iter([{"x": 2}, {"x": 9}, {"x": 4}])}
    med, raw = timing.interleaved({"a": lambda: order.append("a") or next(values["a"]),
                                   "b": lambda: order.append("b") or next(values["b"])}, 3)
    assert order == ["a", "b"] * 3
    assert med == {"a": 3, "b": {"x": 4}} and raw["a"] == [5, 1, 3]


def test_step_clock_skips_the_first_step():
    clock = timing.StepClock("cpu", items_per_step=10)
    clock.times = [5.0, 6.0, 7.0, 8.0]   # ends of steps: the first took 5 s (warm-up), then 1 s per step
    assert clock.rate() == pytest.approx(10.0)
    with pytest.raises(RuntimeError):
        timing.StepClock("cpu", 1).rate()


def test_the_bench_command_writes_json_and_markdown(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--only", "load", "--out", str(tmp_path)]) == 0
    written = sorted(os.listdir(tmp_path))
    assert [os.path.splitext(n)[1] for n in written] == [".json", ".md"]
    report = json.loads((tmp_path / written[0]).read_text())
    assert report["machine"]["torch"] and len(report["rows"]) == 3
    assert all(r["figure"] == 7 and r["baseline"] > 0 and r["candidate"] > 0 for r in report["rows"])
    table = (tmp_path / written[1]).read_text()
    assert "| 7 | load conv f8c8w32: ms |" in table and table == suite.markdown(report)


def test_the_bench_command_refuses_unknown_groups_and_devices(capsys):
    assert cli.main(["bench", "--only", "train,nope"]) == 2
    assert "nope" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert cli.main(["bench", "--device", "cuda"]) == 2


def test_figure_1s_textbook_baseline_is_the_same_function_written_plainly():
    import torch
    import train_figures
    from autoencoder_atelier.models.layers import Block
    from autoencoder_atelier.models.speedups import FastBlock, FastChain, UpConv
    from helpers import tiny_ae
    ae = tiny_ae("conv", downscale=4, blocks=1)
    net = ae.model
    with torch.no_grad():   # make the conv pyramid contribute (a fresh model starts it at zero)
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    plain = train_figures.textbook(ae)
    kinds = {type(m) for m in plain.modules()}
    assert not kinds & {FastBlock, FastChain, UpConv} and Block in kinds
    x = torch.rand(2, 3, 32, 32)
    a, _ = net.training_forward(x)
    b, _ = plain.training_forward(x)
    assert (a - b).abs().max() < 1e-5 and a.std() > 0.01


def test_the_train_figures_drive_the_real_node():
    """The training figures call the Train node as ComfyUI does; a change of its signature must not break them."""
    import train_figures
    from autoencoder_atelier.models.autoencoder import Autoencoder

    from helpers import procedural, tiny_config
    ae = Autoencoder.new(tiny_config("conv"), seed=0)
    rate, wall, trained = train_figures.node_rate(ae, procedural(4, 32), "cpu", 3, 2, crop_size=32, precision="fp32")
    assert rate > 0 and wall > 0 and trained.state.step == 3 and ae.state.step == 0


def test_the_train_figures_train_without_the_validation_split():
    """Speed and 40-step quality figures compare training loops: all images train and the last weights are kept."""
    import train_figures
    from autoencoder_atelier.models.autoencoder import Autoencoder

    from helpers import procedural, tiny_config
    ae = Autoencoder.new(tiny_config("conv"), seed=0)
    _, _, trained = train_figures.node_rate(ae, procedural(16, 32), "cpu", 3, 2, crop_size=32, precision="fp32")
    assert trained.state.summary["data_size"] == 16 and trained.state.step == 3


def test_the_generation_bench_prints_its_table_and_writes_its_picture(tmp_path, capsys):
    """bench/generation.py end to end on a tiny model (it once failed at its imports before printing a figure)."""
    import generation
    from autoencoder_atelier.models.prior_training import learn_prior
    from autoencoder_atelier.models.train import Trainer, TrainSettings
    from helpers import procedural, tiny_ae

    works = procedural(12, 32, seed=1)
    ae = Trainer(tiny_ae(), works[:8], TrainSettings(steps=5, seed=0)).run()   # it records the latent statistics
    rows = generation.figures("thumbs", ae, learn_prior(ae, works[:8]), works[:8], works[8:], 4, 0, str(tmp_path))
    assert set(rows) == {"(a) prior samples", "(b) Sample Latent today", "(p) stitched 4x4-cell patches",
                         "(c) decoder ceiling", "(d) real floor"}
    assert "| (a) prior samples |" in capsys.readouterr().out
    assert (tmp_path / "prior_samples.png").stat().st_size > 0
