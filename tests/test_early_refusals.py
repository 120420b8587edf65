"""Cheap refusals come before expensive work: widget values through VALIDATE_INPUTS (as ComfyUI calls it,
and the headless runner too), and data (batch sizes) in the headless pre-flight, before any training step."""
import json
import os

import pytest
import torch
from PIL import Image

from autoencoder_atelier.headless import cli, runner
from autoencoder_atelier.headless.core_nodes import SaveAnimatedWEBP, SaveImage
from autoencoder_atelier.headless.preflight import batch_of
from autoencoder_atelier.models import codec, procedural, storage
from autoencoder_atelier.models.errors import AtelierError
from autoencoder_atelier.models.train import Trainer
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS
from helpers import ROOT, call, tiny_ae

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
    code = cli.main(["-q", "run", os.path.join(ROOT, "workflows", "Atelier - Train on a folder.json"),
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


def counted(monkeypatch, owner, name, calls):
    real = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **k: calls.append(name) or real(*a, **k))


def test_a_walk_with_one_keyframe_stops_the_demo_before_any_training_step(tmp_dirs, monkeypatch, capsys):
    art = tmp_dirs.input / "art"
    procedural.write_folder(str(art), count=4, size=32)
    calls = []
    counted(monkeypatch, Trainer, "step", calls)
    counted(monkeypatch, codec, "encode", calls)
    code = cli.main(["-q", "run", cli.DEMO_WORKFLOW,
                     "--set", f"folder={json.dumps(str(art))}", "--set", "steps=5", "--set", "size=32",
                     "--set", "Keyframes.count=1"])
    err = capsys.readouterr().err
    assert calls == [] and not os.listdir(tmp_dirs.models) and not os.listdir(tmp_dirs.output)
    assert code == 2 and "node 9 (AtelierLatentWalk)" in err and "at least 2 keyframe latents" in err \
        and "got 1" in err


def test_unpairable_batches_stop_a_mix_before_encoding_and_the_loaders_run_once(tmp_dirs, monkeypatch, capsys):
    storage.save_autoencoder(tiny_ae(), str(tmp_dirs.models / "mine.safetensors"))
    for name, frames in (("a.gif", 3), ("b.gif", 2)):   # Load Image gives every frame of a file
        pictures = [Image.new("RGB", (16, 16), (40 * i, 90, 200)) for i in range(frames)]
        pictures[0].save(tmp_dirs.input / name, save_all=True, append_images=pictures[1:])
    calls = []
    counted(monkeypatch, codec, "encode", calls)
    counted(monkeypatch, runner.CORE_NODES["LoadImage"], "load_image", calls)
    code = cli.main(["-q", "run", os.path.join(ROOT, "workflows", "Atelier - Mix two works.json"),
                     "--set", "ae_name=mine.safetensors", "--set", "Image A.image=a.gif",
                     "--set", "Image B.image=b.gif"])
    err = capsys.readouterr().err
    assert calls == ["load_image", "load_image"] and not os.listdir(tmp_dirs.output)
    assert code == 2 and "AtelierLatentMix" in err and "latent batches of 2 and 3 cannot be paired" in err


def latent(n):
    return {"samples": torch.randn(n, 8, 4, 4)}


# (node, its inputs at run time, the batch sizes the pre-flight sees): the same data, the same refusal
SAME_REFUSALS = [
    ("AtelierLatentWalk", dict(keyframes=latent(1), frames=5, method="slerp", easing="linear", loop=False),
     dict(keyframes=1, frames=5)),
    ("AtelierLatentMix", dict(latent_a=latent(2), latent_b=latent(3), factor=0.5, mode="lerp"),
     dict(latent_a=2, latent_b=3)),
    ("AtelierLatentMix", dict(latent_a=latent(2), latent_b=latent(1), latent_c=latent(3), factor=0.5,
                              mode="difference-add"), dict(latent_a=2, latent_b=1, latent_c=3)),
    ("AtelierLatentStyleMix", dict(content=latent(2), style=latent(1), strength=1.0, mask=torch.ones(3, 8, 8)),
     dict(content=2, style=1, mask=3)),
    ("AtelierLatentCollage", dict(latent_a=latent(2), latent_b=latent(3), split="circle", position=0.5, feather=1.0),
     dict(latent_a=2, latent_b=3)),
    ("AtelierLatentDirections", dict(latents=latent(1), max_directions=4), dict(latents=1)),
    ("AtelierRestore", dict(autoencoder=tiny_ae(), images=torch.rand(2, 16, 16, 3), passes=1,
                            mask=torch.ones(3, 16, 16)), dict(images=2, passes=1, mask=3)),
]


@pytest.mark.parametrize("node, inputs, sizes", SAME_REFUSALS, ids=[case[0] for case in SAME_REFUSALS])
def test_the_pre_flight_refuses_what_the_node_refuses_with_its_words(node, inputs, sizes):
    with pytest.raises(AtelierError) as early:
        NODE_CLASS_MAPPINGS[node].batch_sizes(**sizes)
    with pytest.raises(ValueError) as late:
        call(node, **inputs)
    assert str(late.value).endswith(str(early.value))
    assert NODE_CLASS_MAPPINGS[node].batch_sizes(**{k: None for k in sizes}) is not None   # unknown sizes pass


def test_batch_sizes_flow_through_the_nodes_as_the_run_makes_them(tmp_dirs):
    """What the pre-flight predicts is what a run gives (else it would refuse good workflows)."""
    ae = tiny_ae()
    z = call("AtelierEncode", autoencoder=ae, images=torch.rand(3, 16, 16, 3))[0]
    cases = [("AtelierEncode", dict(images=3), z),
             ("AtelierDecode", dict(latent=3), call("AtelierDecode", autoencoder=ae, latent=z)[0]),
             ("AtelierLatentMix", dict(latent_a=1, latent_b=3),
              call("AtelierLatentMix", latent_a=latent(1), latent_b=z, factor=0.5, mode="slerp")[0]),
             ("AtelierLatentWalk", dict(keyframes=3, frames=7),
              call("AtelierLatentWalk", keyframes=z, frames=7, method="slerp", easing="linear", loop=True)[0]),
             ("AtelierLatentStyleMix", dict(content=1, style=3),
              call("AtelierLatentStyleMix", content=latent(1), style=z, strength=1.0)[0]),
             ("AtelierLatentCollage", dict(latent_a=3, latent_b=1), call("AtelierLatentCollage", latent_a=z,
              latent_b=latent(1), split="circle", position=0.5, feather=1.0)[0]),
             ("AtelierImageGrid", dict(images=3),
              call("AtelierImageGrid", images=torch.rand(3, 8, 8, 3), columns=0, padding=2)[0])]
    for node, sizes, out in cases:
        assert NODE_CLASS_MAPPINGS[node].batch_sizes(**sizes)[0] == batch_of(out), node
