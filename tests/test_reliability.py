"""Reliability: the bad-input rows and guarantees not covered by the other test files.

Every node leaves its inputs alone and repeats itself bit for bit; two prompts can share one model;
a model file replaced on disk; saves that fail half-way; out of GPU memory; Cancel at any step; huge
folders; latents wired from the wrong model. README's Troubleshooting table lists the user's view.
"""
import errno
import gc
import io
import os
import threading
import weakref
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from autoencoder_atelier.models import codec, files, formats, imagefolder, storage
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.dataset import WorkFolder
from autoencoder_atelier.models.prior_training import learn_prior
from autoencoder_atelier.models.train import OUT_OF_MEMORY, Trainer, TrainSettings, train
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge, train_node
from autoencoder_atelier.nodes.schema import AUTOENCODER, DATASET

import helpers
from helpers import (call, deep_digest, error_start, model_digest, procedural, read_safetensors, refusal, tiny_ae,
                     weights_equal, without_hanging)

FAST = dict(helpers.FAST, crop_size=16)


@pytest.fixture(scope="module")
def trained():
    """A conv model carrying everything nodes could touch: optimizer moments, history, latent statistics, a prior."""
    works = procedural(6, 32, seed=5)
    return learn_prior(train(tiny_ae("conv", latent_channels=4), works, TrainSettings(steps=3, **FAST)), works)


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, ns in os.walk(folder) for n in ns)


# -- every node: inputs untouched, outputs bit-identical on a second run ----------------------

def link_value(kind, ae):
    """A valid value for each link type a node can take (fresh objects on every call)."""
    images = procedural(4, 32, seed=7)
    if kind == AUTOENCODER:
        return ae
    if kind == "IMAGE":
        return images
    if kind == "LATENT":
        return codec.encode(ae, images)
    if kind == "MASK":
        return torch.linspace(0, 1, 32 * 32).reshape(32, 32)
    if kind == "DIRECTIONS":
        return call("AtelierLatentDirections", latents=codec.encode(ae, images), max_directions=3)[0]
    if kind == DATASET:
        return WorkFolder(os.path.join(bridge.input_dir(), "art"))   # made by the test below
    raise KeyError(f"no test value for the link type {kind}; add one to link_value")


# Widget values other than the defaults, where the defaults would be slow or need a file.
OVERRIDES = {
    "AtelierNewAutoencoder": {"latent_channels": 4, "downscale": "4", "width": 8},
    "AtelierLoadAutoencoder": {"ae_name": "every_node.safetensors"},
    "AtelierSaveAutoencoder": {"filename_prefix": "saved/every_node"},
    "AtelierLoadImageFolder": {"folder": "art", "size": 16},
    "AtelierLoadDataset": {"folder": "art"},
    "AtelierTrainAutoencoder": {"steps": 3, "batch_size": 2, "crop_size": 16},
    "AtelierSampleLatent": {"batch_size": 2, "width": 32, "height": 32},
    "AtelierLatentDirections": {"max_directions": 3},
    "AtelierLatentEdit": {"strength_2": 0.5},
}


def node_inputs(node_id, ae):
    """Every input, required and optional: links from link_value, widgets at their default or override."""
    types = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    inputs = {}
    for section in ("required", "optional"):
        for name, (kind, opts) in types.get(section, {}).items():
            if isinstance(kind, list):
                inputs[name] = opts.get("default", kind[0])
            elif kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                inputs[name] = opts["default"]
            else:
                inputs[name] = link_value(kind, ae)
    inputs.update(OVERRIDES.get(node_id, {}))
    return inputs


def digest(value):
    if isinstance(value, Autoencoder):
        return model_digest(value)
    return deep_digest(value)


def output_digest(value):
    """Outputs compared between two runs; a new model's random id and a saved file's name and time excepted."""
    if isinstance(value, Autoencoder):
        st = value.state
        return deep_digest([dict(value.model.state_dict()), value.config, st.step, st.optimizer,
                            list(st.loss_history), st.latent_stats])
    if isinstance(value, str) and value.endswith(".safetensors"):
        return deep_digest(read_safetensors(value)[1])
    return deep_digest(value)


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_every_node_leaves_its_inputs_alone_and_repeats_itself_exactly(node_id, tmp_dirs, trained):
    storage.save_autoencoder(trained, tmp_dirs.models / "every_node.safetensors")
    (tmp_dirs.input / "art").mkdir()
    for i, img in enumerate(procedural(3, 24, seed=2)):
        Image.fromarray((img.numpy() * 255).astype("uint8")).save(tmp_dirs.input / "art" / f"{i}.png")
    inputs = node_inputs(node_id, trained)
    before = {k: digest(v) for k, v in inputs.items()}
    if isinstance(inputs.get("autoencoder"), Autoencoder):  # the optimizer state is hashed too
        assert inputs["autoencoder"].state.optimizer and before["autoencoder"] == model_digest(trained)
    first = call(node_id, **inputs)
    second = call(node_id, **inputs)
    after = {k: digest(v) for k, v in inputs.items()}
    assert [k for k in inputs if before[k] != after[k]] == [], f"{node_id} changed its inputs"
    assert len(first) == len(NODE_CLASS_MAPPINGS[node_id].RETURN_TYPES)
    assert [output_digest(v) for v in first] == [output_digest(v) for v in second], "not deterministic"


# -- wiring ------------------------------------------------------------------------------

def test_a_dense_latent_into_a_conv_model_and_back_are_refused():
    dense = tiny_ae("dense", latent_channels=8, image_size=16)
    conv = tiny_ae("conv", latent_channels=8)
    (dz,) = call("AtelierEncode", autoencoder=dense, images=procedural(2, 16))
    assert dz["samples"].shape == (2, 8, 1, 1)  # same channel count: only the label tells them apart
    with pytest.raises(ValueError, match=refusal("AtelierDecode", "this latent was made by a dense autoencoder but "
                                                 "this one is conv.*Decode it with the autoencoder that encoded it")):
        call("AtelierDecode", autoencoder=conv, latent=dz)
    (cz,) = call("AtelierEncode", autoencoder=conv, images=procedural(1, 32)[:, :4, :4])
    assert cz["samples"].shape == (1, 8, 1, 1)
    with pytest.raises(ValueError, match="made by a conv autoencoder but this one is dense"):
        call("AtelierDecode", autoencoder=dense, latent=cz)
    # latents from other nodes (no label) still decode when their shape fits
    assert call("AtelierDecode", autoencoder=conv, latent={"samples": dz["samples"]})[0].shape == (2, 4, 4, 3)


def test_sampled_latents_carry_the_label_too(trained):
    (z,) = call("AtelierSampleLatent", autoencoder=trained, batch_size=1, width=32, height=32, seed=0, temperature=1)
    assert z["atelier_architecture"] == "conv"
    assert call("AtelierDecode", autoencoder=trained, latent=z)[0].shape == (1, 32, 32, 3)


@pytest.mark.parametrize("node_id", sorted(i for i, c in NODE_CLASS_MAPPINGS.items()
                                           if "IMAGE" in [k for k, _ in c.INPUT_TYPES()["required"].values()]))
def test_every_node_taking_images_refuses_an_empty_batch(node_id, trained, tmp_dirs):
    inputs = node_inputs(node_id, trained)
    name = next(k for k, (kind, _) in NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"].items() if kind == "IMAGE")
    inputs[name] = torch.zeros(0, 32, 32, 3)
    with pytest.raises(ValueError, match=refusal(node_id, ".*(empty|non-empty)")):
        call(node_id, **inputs)


@pytest.mark.parametrize("node_id", sorted(i for i, c in NODE_CLASS_MAPPINGS.items()
                                           if "LATENT" in [k for k, _ in c.INPUT_TYPES()["required"].values()]))
def test_every_node_taking_latents_refuses_or_passes_an_empty_batch(node_id, trained):
    inputs = node_inputs(node_id, trained)
    for k, v in inputs.items():
        if isinstance(v, dict) and "samples" in v:
            inputs[k] = dict(v, samples=v["samples"][:0])
    try:
        out = call(node_id, **inputs)
    except ValueError as e:
        assert str(e).startswith(error_start(node_id))
    else:
        assert out[0]["samples"].shape[0] == 0 if isinstance(out[0], dict) else out[0].shape[0] in (0, 1)


def test_out_of_range_pixels_are_clamped_like_any_other_image(trained):
    imgs = procedural(2, 32)
    wild = imgs * 3 - 1  # -1..2
    (a,) = call("AtelierEncode", autoencoder=trained, images=wild)
    (b,) = call("AtelierEncode", autoencoder=trained, images=wild.clamp(0, 1))
    assert torch.equal(a["samples"], b["samples"])
    out = train(trained, wild, TrainSettings(steps=1, **FAST))
    assert out.state.step == trained.state.step + 1


def test_one_pixel_images(tmp_path, trained):
    d = tmp_path / "dots"
    d.mkdir()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "dot.png")
    loaded = imagefolder.load_folder(str(d), size=8, mode="center-crop")
    assert loaded.shape == (1, 8, 8, 3) and abs(loaded[0, 4, 4, 0].item() - 200 / 255) < 0.01
    dot = loaded[:, :1, :1]
    (z,) = call("AtelierEncode", autoencoder=trained, images=dot)
    assert call("AtelierDecode", autoencoder=trained, latent=z)[0].shape == (1, 1, 1, 3)  # padded, cropped back
    with pytest.raises(ValueError, match=refusal("AtelierTrainAutoencoder",
                                                 "images of 1x1 are smaller than the model's downscale of 4")):
        call("AtelierTrainAutoencoder", autoencoder=trained, images=dot, steps=1, batch_size=1,
             learning_rate=0.001, seed=0, loss="mse")


# -- folders -----------------------------------------------------------------------------

def test_a_folder_of_10000_files_opens_only_count_of_them(tmp_path, monkeypatch):
    d = tmp_path / "big"
    d.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, format="PNG")
    png = buf.getvalue()
    for i in range(10_000):
        (d / f"{i:05d}.png").write_bytes(png)
    opened = []
    real = Image.open
    monkeypatch.setattr(imagefolder.Image, "open", lambda fp, *a, **k: opened.append(fp) or real(fp, *a, **k))
    for mode in ("center-crop", "random-crops"):
        opened.clear()
        (out,) = call("AtelierLoadImageFolder", folder=str(d), size=8, mode=mode, count=16)
        assert out.shape == (16, 8, 8, 3) and len(opened) == 16, mode
    assert NODE_CLASS_MAPPINGS["AtelierLoadImageFolder"].IS_CHANGED(str(d), 8, "center-crop", 16)


# -- training ----------------------------------------------------------------------------

def test_one_step_trains_exactly_one_step(trained):
    images = procedural(4, 32)
    ae, curve, grid = call("AtelierTrainAutoencoder", autoencoder=trained, images=images, steps=1, batch_size=2,
                           learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    assert ae.state.step == trained.state.step + 1 and len(ae.state.loss_history) == len(trained.state.loss_history) + 1
    assert not weights_equal(ae, trained) and curve.shape[-1] == 3 and grid.shape[0] == 1


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


@pytest.mark.parametrize("at", [1, 3, 5])  # the first, a middle and the last of 5 steps
def test_cancel_at_any_step_changes_nothing_and_reaches_comfyui_unwrapped(at, trained, tmp_dirs, monkeypatch):
    checks = []

    def check_interrupted():
        checks.append(1)
        if len(checks) == at:
            raise Interrupted()

    monkeypatch.setattr(bridge, "check_interrupted", check_interrupted)
    before, images = model_digest(trained), procedural(4, 32)
    with pytest.raises(Interrupted) as e:
        call("AtelierTrainAutoencoder", autoencoder=trained, images=images, steps=5, batch_size=2,
             learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    assert type(e.value) is Interrupted and len(checks) == at  # ComfyUI sees its own exception: "interrupted"
    assert model_digest(trained) == before and torch.equal(images, procedural(4, 32))
    assert files_under(tmp_dirs.models.parent) == []


def oom_when_batch_above(monkeypatch, limit):
    real = Trainer.step

    def step(self, i):
        if self.settings.batch_size > limit:
            raise OUT_OF_MEMORY("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, i)

    monkeypatch.setattr(Trainer, "step", step)


@pytest.mark.parametrize("limit,fits", [(4, "batch_size 4 fits (measured)"), (0, "not even batch_size 1 fits")])
def test_out_of_memory_frees_memory_and_says_which_batch_size_fits(limit, fits, trained, monkeypatch):
    oom_when_batch_above(monkeypatch, limit)
    freed, made = [], []
    monkeypatch.setattr(bridge, "free_memory", lambda: freed.append(1))
    real_init = Trainer.__init__

    def init(self, *a, **k):
        made.append(weakref.ref(self))
        real_init(self, *a, **k)

    monkeypatch.setattr(Trainer, "__init__", init)
    before = model_digest(trained)
    with pytest.raises(ValueError) as e:
        call("AtelierTrainAutoencoder", autoencoder=trained, images=procedural(4, 32), steps=10, batch_size=16,
             learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierTrainAutoencoder") + "ran out of GPU memory training with "
                          "batch_size 16 on 16x16 crops: ") and fits in msg and "input model is unchanged" in msg, msg
    assert e.value.__context__ is None and e.value.__cause__ is None
    assert freed and model_digest(trained) == before
    gc.collect()
    assert made[0]() is None, "the error still holds the trainer (and its GPU tensors)"


def test_out_of_memory_putting_the_images_on_the_gpu(trained, monkeypatch):
    def no_room(*a, **k):
        raise OUT_OF_MEMORY("CUDA out of memory")

    monkeypatch.setattr(formats, "image_to_bchw", no_room)
    freed = []
    monkeypatch.setattr(bridge, "free_memory", lambda: freed.append(1))
    with pytest.raises(ValueError, match="ran out of GPU memory putting the training images on the GPU; load fewer"):
        call("AtelierTrainAutoencoder", autoencoder=trained, images=procedural(4, 32), steps=10, batch_size=16,
             learning_rate=0.001, seed=0, loss="mse")
    assert freed


def test_free_memory_without_comfyui_is_harmless():
    bridge.free_memory()


# -- saving ------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENAMETOOLONG])
def test_save_on_a_full_or_read_only_disk_says_so_and_leaves_nothing(code, trained, tmp_dirs, monkeypatch):
    def fails_half_way(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(storage, "save_file", fails_half_way)
    with pytest.raises(ValueError) as e:
        call("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix="portraits/style")
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierSaveAutoencoder") + f"could not write into {tmp_dirs.models} "
                          f"({os.strerror(code)}); nothing was saved."), msg
    assert e.value.__suppress_context__  # one clear line, not an OSError traceback
    assert [f for f in files_under(tmp_dirs.models) if not f.endswith("/")] == [] and bridge.list_models() == []


def test_save_into_a_really_read_only_folder(trained, tmp_dirs):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the simulated cases above cover it")
    os.chmod(tmp_dirs.models, 0o555)
    try:
        with pytest.raises(ValueError, match="could not write into .*Permission denied.*nothing was saved"):
            call("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix="style")
        assert files_under(tmp_dirs.models) == []
    finally:
        os.chmod(tmp_dirs.models, 0o755)


@pytest.mark.parametrize("complete", [False, True])
def test_a_save_killed_before_the_rename_leaves_no_loadable_model(complete, trained, tmp_dirs, monkeypatch):
    """A killed process runs no cleanup: what it leaves is a hidden .tmp file that no node lists or loads."""
    real = storage.save_file

    def killed(tensors, filename, metadata=None):
        if complete:
            real(tensors, filename, metadata=metadata)
        else:
            with open(filename, "wb") as f:
                f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":")
        raise KeyboardInterrupt()

    monkeypatch.setattr(storage, "save_file", killed)
    monkeypatch.setattr(os, "remove", lambda p: None)  # no cleanup, as after a kill
    with pytest.raises(KeyboardInterrupt):
        call("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix="style")
    monkeypatch.undo()
    (left,) = os.listdir(tmp_dirs.models)
    assert left.startswith(".atelier-") and left.endswith(".tmp")
    assert bridge.list_models() == []
    with pytest.raises(ValueError, match="not a model file name"):
        call("AtelierLoadAutoencoder", ae_name=left)
    # and the next save is numbered as if nothing happened
    (path,) = call("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix="style")
    assert os.path.basename(path) == "style_00001.safetensors" and bridge.list_models() == ["style_00001.safetensors"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("in_comfyui", [False, True])
def test_special_files_named_like_models_are_never_listed_or_opened(in_comfyui, trained, tmp_dirs, monkeypatch):
    """Picking a FIFO named like a model hung Load Autoencoder (and the server thread) forever."""
    models = tmp_dirs.models
    storage.save_autoencoder(trained, models / "real.safetensors")
    os.symlink(models / "real.safetensors", models / "link.safetensors")   # a link to a model is one
    os.mkfifo(models / "fifo.safetensors")
    os.symlink(models / "gone", models / "broken.safetensors")
    (models / "sub").mkdir()
    os.mkfifo(models / "sub" / "deep.safetensors")
    if in_comfyui:   # folder_paths.get_filename_list lists every name with the extension, FIFOs included
        listed = [os.path.relpath(os.path.join(d, n), models) for d, _, ns in os.walk(models) for n in ns]
        monkeypatch.setattr(bridge, "IN_COMFYUI", True)
        monkeypatch.setattr(bridge, "_fp", SimpleNamespace(get_filename_list=lambda key: listed,
                                                           get_full_path=lambda key, name: str(models / name),
                                                           get_folder_paths=lambda key: [str(models)]))
    assert bridge.list_models() == ["link.safetensors", "real.safetensors"]
    assert NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].INPUT_TYPES()["required"]["ae_name"][0] == \
        ["link.safetensors", "real.safetensors"]
    assert weights_equal(call("AtelierLoadAutoencoder", ae_name="link.safetensors")[0], trained)
    for name in ("fifo.safetensors", "sub/deep.safetensors", "broken.safetensors"):   # typed, or an old workflow
        with pytest.raises(ValueError, match=refusal("AtelierLoadAutoencoder", f"'{name}' was not found")):
            without_hanging(lambda: call("AtelierLoadAutoencoder", ae_name=name))
    # A FIFO put in place after the file was checked is refused from the open handle, unread.
    monkeypatch.setattr(files, "is_regular_file", lambda path: True)
    with pytest.raises(storage.ModelFileError, match="fifo.safetensors: cannot be read .*not a regular file"):
        without_hanging(lambda: storage.load_autoencoder(models / "fifo.safetensors"))


def test_an_unreadable_model_file_says_so(tmp_path, trained, monkeypatch):
    path = storage.save_autoencoder(trained, tmp_path / "m.safetensors")
    real_open = os.open

    def denied(p, *a, **k):   # as chmod 000 would (the tests may run as root, whom that does not stop)
        if os.fspath(p) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(p, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(storage.ModelFileError, match="m.safetensors: cannot be read \\(Permission denied\\)"):
        storage.load_autoencoder(path)


# -- concurrency -------------------------------------------------------------------------

def run_threads(*targets):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the test below
                errors.append(e)
        return run

    threads = [threading.Thread(target=guard(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_two_prompts_use_the_same_loaded_model_at_once(trained):
    images = procedural(4, 32)
    before = model_digest(trained)
    (z,) = call("AtelierEncode", autoencoder=trained, images=images)
    (y,) = call("AtelierDecode", autoencoder=trained, latent=z)
    results = []

    def prompt():
        for _ in range(10):
            (z2,) = call("AtelierEncode", autoencoder=trained, images=images)
            (y2,) = call("AtelierDecode", autoencoder=trained, latent=z2)
            results.append(torch.equal(z2["samples"], z["samples"]) and torch.equal(y2, y))

    run_threads(prompt, prompt)
    assert results == [True] * 20 and model_digest(trained) == before


def test_training_while_another_prompt_encodes_with_the_same_model(trained):
    images = procedural(4, 32)
    before = model_digest(trained)
    (z,) = call("AtelierEncode", autoencoder=trained, images=images)
    alone = call("AtelierTrainAutoencoder", autoencoder=trained, images=images, steps=15, batch_size=2,
                 learning_rate=0.002, seed=3, loss="mse", crop_size=16)[0]
    done, same, out = threading.Event(), [], []

    def encoder():
        while not done.is_set() or not same:
            same.append(torch.equal(call("AtelierEncode", autoencoder=trained, images=images)[0]["samples"],
                                    z["samples"]))

    def trainer():
        try:
            out.append(call("AtelierTrainAutoencoder", autoencoder=trained, images=images, steps=15, batch_size=2,
                            learning_rate=0.002, seed=3, loss="mse", crop_size=16)[0])
        finally:
            done.set()

    run_threads(encoder, trainer)
    assert same and all(same)
    assert model_digest(trained) == before
    assert weights_equal(out[0], alone) and not weights_equal(out[0], trained)  # training worked on a clone


def test_a_model_file_replaced_on_disk_after_loading(trained, tmp_dirs):
    path = storage.save_autoencoder(trained, tmp_dirs.models / "m.safetensors")
    load = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"]
    key = load.IS_CHANGED("m.safetensors")
    (old, _) = call("AtelierLoadAutoencoder", ae_name="m.safetensors")
    images = procedural(2, 32)
    (z,) = call("AtelierEncode", autoencoder=old, images=images)

    replacement = tiny_ae("conv", seed=9, latent_channels=4)
    st = os.stat(path)
    storage.save_autoencoder(replacement, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old time stamp
    assert load.IS_CHANGED("m.safetensors") != key  # ComfyUI re-runs the loader instead of using its cache
    assert torch.equal(call("AtelierEncode", autoencoder=old, images=images)[0]["samples"], z["samples"])
    (new, _) = call("AtelierLoadAutoencoder", ae_name="m.safetensors")
    assert weights_equal(new, replacement) and not weights_equal(new, old)

    # a file broken on disk: the loaded model keeps working, loading again says what is wrong
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    assert torch.equal(call("AtelierEncode", autoencoder=old, images=images)[0]["samples"], z["samples"])
    with pytest.raises(ValueError, match=refusal("AtelierLoadAutoencoder", "m.safetensors: file is truncated")):
        call("AtelierLoadAutoencoder", ae_name="m.safetensors")


def test_a_name_the_file_system_refuses_is_a_clear_error(trained, tmp_dirs):
    prefix = "é" * 200  # 200 characters pass the prefix check; 400 bytes are too long for a file name
    with pytest.raises(ValueError, match=refusal("AtelierSaveAutoencoder",
                                                 r"could not write into .*\(File name too long\)")):
        call("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix=prefix)
    assert files_under(tmp_dirs.models) == []


def test_a_blow_up_is_named_on_the_loss_curve_and_forgotten_by_the_next_good_run(trained, monkeypatch):
    real_step, titles = Trainer.step, []
    monkeypatch.setattr(Trainer, "step", lambda self, i: None if i == 2 else real_step(self, i))  # NaN at step 3
    monkeypatch.setattr(train_node, "loss_curve", lambda h, title, **_: titles.append(title) or torch.zeros(1, 8, 8, 3))
    args = dict(images=procedural(4, 32), steps=6, batch_size=2, learning_rate=0.001, seed=0, loss="mse", crop_size=16)
    ae = call("AtelierTrainAutoencoder", autoencoder=trained, **args)[0]
    start = trained.state.step
    assert titles == [f"training blew up (NaN/infinite values) at step {start + 3}: lower the learning rate"]
    assert ae.state.step == start and weights_equal(ae, trained)  # the last good weights: the input's
    monkeypatch.setattr(Trainer, "step", real_step)
    again = call("AtelierTrainAutoencoder", autoencoder=ae, **args)[0]
    assert "stopped_early" not in again.state.summary and titles[-1] == "training loss"


@pytest.mark.parametrize("feather", [2.5e-100, 1e-6, 1e-3, 0.5])
def test_a_tiny_feather_gives_a_finite_collage(feather):
    """Found by the long fuzz run: a feather of 1e-100 once made a 0/0 Gaussian and a NaN latent."""
    a, b = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    mask = torch.zeros(3, 3)
    mask[:, :1] = 1
    (out,) = call("AtelierLatentCollage", latent_a={"samples": a}, latent_b={"samples": b}, mask=mask,
                  split="left-right", position=0.5, feather=feather)
    assert torch.isfinite(out["samples"]).all()
    if feather <= 1e-3:
        assert torch.equal(out["samples"][..., :1], a[..., :1]) and torch.equal(out["samples"][..., 1:], b[..., 1:])


@pytest.mark.parametrize("mode", ["lerp", "slerp", "add", "difference-add"])
def test_a_batch_from_latent_c_is_paired_with_single_a_and_b(mode):
    """Found by fuzzing: single A and B with a batch of 2 in C crashed slerp with a size mismatch."""
    a, b, c = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2), torch.randn(2, 4, 2, 2)
    (out,) = call("AtelierLatentMix", latent_a={"samples": a}, latent_b={"samples": b}, factor=0.5, mode=mode,
                  latent_c={"samples": c})
    assert out["samples"].shape == (2, 4, 2, 2) and torch.isfinite(out["samples"]).all()
