"""Cheap refusals come before expensive work: widget values through VALIDATE_INPUTS (as ComfyUI calls it,
and the headless runner too), before any training step."""
import json
import os

import pytest

from autoencoder_atelier.headless import cli, runner
from autoencoder_atelier.headless.core_nodes import SaveAnimatedWEBP, SaveImage
from autoencoder_atelier.models import procedural
from autoencoder_atelier.models.train import Trainer
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS
from helpers import ROOT

SAVERS = [NODE_CLASS_MAPPINGS["AtelierSaveAutoencoder"], SaveImage, SaveAnimatedWEBP]


@pytest.mark.parametrize("saver", SAVERS)
def test_savers_refuse_a_bad_prefix_up_front_and_wait_for_a_linked_one(saver):
    assert "not allowed" in saver.VALIDATE_INPUTS(filename_prefix="../outside")
    assert saver.VALIDATE_INPUTS(filename_prefix="portraits/mine") is True
    assert saver.VALIDATE_INPUTS(filename_prefix=None) is True   # linked: ComfyUI has no value yet


@pytest.mark.parametrize("node, prefix", [("AtelierSaveAutoencoder", "/etc/evil"),
                                          ("Walk strip (centre-cropped works)", "a/../../b")])
def test_a_bad_prefix_stops_the_demo_before_any_training_step(tmp_dirs, monkeypatch, capsys, node, prefix):
    art = tmp_dirs.input / "art"
    procedural.write_folder(str(art), count=4, size=32)
    steps = []
    real = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, i: steps.append(i) or real(self, i))
    code = cli.main(["-q", "run", os.path.join(ROOT, "workflows", "atelier_train_on_a_folder.json"),
                     "--set", f"folder={json.dumps(str(art))}", "--set", "steps=5", "--set", "size=32",
                     "--set", f"{node}.filename_prefix={prefix}"])
    err = capsys.readouterr().err
    assert code == 2 and "filename_prefix" in err and "not allowed" in err and node in err
    assert steps == [] and not os.listdir(tmp_dirs.models) and not os.listdir(tmp_dirs.output)


def test_the_runner_calls_validate_inputs_with_the_inputs_it_names(monkeypatch):
    seen = []

    class Checked:
        RETURN_TYPES, FUNCTION, OUTPUT_NODE = (), "go", True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT", {"default": 0}), "b": ("STRING", {"default": ""})},
                    "optional": {"img": ("IMAGE",)}}

        @classmethod
        def VALIDATE_INPUTS(cls, a, img=None):
            seen.append((a, img))
            return True if a < 5 else f"a={a} is too big"

        def go(self, **kw):
            return {}

    monkeypatch.setitem(runner.NODES, "Checked", Checked)
    runner.plan({"1": {"class_type": "Checked", "inputs": {"a": 1, "b": "x"}}})
    with pytest.raises(runner.WorkflowError, match=r"node 2 \(Checked\): a=7 is too big"):
        runner.plan({"2": {"class_type": "Checked", "inputs": {"a": 7, "b": "x"}}})
    assert seen == [(1, None), (7, None)]
