"""Fuzzing with hypothesis: hostile model files, and odd inputs to every node.

Each case must end in a valid result or a clear error (ModelFileError, or a ValueError that starts
with the node's name), never another exception, never a model allocated for a refused file, never a
changed input. CI runs the small "atelier" profile (tests/conftest.py); for a long run:

    python -m pytest -q tests/test_fuzz.py --hypothesis-profile=atelier-long --hypothesis-show-statistics
"""
import json
import math
import os
import struct
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from autoencoder_atelier.models import codec, storage
from autoencoder_atelier.models.autoencoder import Autoencoder, TrainState
from autoencoder_atelier.models.config import DOWNSCALES, default_config
from autoencoder_atelier.models.dataset import WorkFolder
from autoencoder_atelier.models.imagefolder import IMAGE_EXTENSIONS
from autoencoder_atelier.models.procedural import make_image as procedural_image
from autoencoder_atelier.models.storage import ModelFileError
from autoencoder_atelier.models.train import TrainSettings, train
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge
from autoencoder_atelier.nodes.schema import AUTOENCODER, DATASET

from helpers import deep_digest, error_start, model_digest, procedural, read_safetensors, tiny_ae, weights_equal

NAN, INF = float("nan"), float("inf")

# -- model files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A real model file with everything in it (optimizer state, history, statistics)."""
    ae = train(tiny_ae("conv", latent_channels=4), procedural(4, 32), TrainSettings(steps=2, batch_size=2))
    path = storage.save_autoencoder(ae, tmp_path_factory.mktemp("fuzz") / "good.safetensors")
    meta, tensors = read_safetensors(path)
    return path, open(path, "rb").read(), meta, tensors


class Allocations:
    """Counts networks built on a real device while a file is read (the meta device costs nothing)."""

    def __init__(self):
        self.real = 0

    def __enter__(self):
        self.saved = storage.build_network

        def spy(config):
            net = self.saved(config)
            self.real += next(net.parameters()).device.type != "meta"
            return net

        storage.build_network = spy
        return self

    def __exit__(self, *exc):
        storage.build_network = self.saved


def load_or_refuse(data):
    """Write ``data`` as a model file and load it: the model, or None if it was refused cleanly."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        with Allocations() as alloc:
            try:
                ae = storage.load_autoencoder(path)
            except ModelFileError as e:
                assert str(e).startswith("fuzz.safetensors: ") and alloc.real == 0, str(e)
                return None
    # Whatever loads is a whole, usable model.
    assert all(torch.isfinite(p).all() for p in ae.model.parameters())
    assert isinstance(ae.state.step, int) and isinstance(ae.state.summary, dict)
    return ae


def safetensors_bytes(header, data=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@given(st.binary(max_size=2048))
def test_random_bytes_are_refused(data):
    assert load_or_refuse(data) is None


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values = st.recursive(json_scalars,
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
tensor_entries = st.fixed_dictionaries({
    "dtype": st.one_of(st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL"]), json_values),
    "shape": st.one_of(st.lists(st.integers(-2, 2 ** 40), max_size=4), json_values),
    "data_offsets": st.one_of(st.lists(st.integers(-2, 2 ** 40), min_size=2, max_size=2), json_values),
})


@st.composite
def our_metadata(draw):
    """Metadata that looks like ours, with each field valid, missing or hostile."""
    cfg = default_config("conv", latent_channels=4, downscale=4, width=8, blocks=1)
    for k in draw(st.lists(st.sampled_from(sorted(cfg)), max_size=3)):
        cfg[k] = draw(json_values)
    meta = {"format": "autoencoder-atelier", "format_version": "1", "config": json.dumps(cfg),
            "training": json.dumps({"step": 3, "summary": {}})}
    for k in draw(st.lists(st.sampled_from(sorted(meta) + ["model_id", "card"]), max_size=3)):
        meta[k] = draw(st.one_of(st.text(max_size=40), json_values.map(json.dumps)))
    return meta


@given(st.dictionaries(st.text(max_size=24), st.one_of(tensor_entries, json_values), max_size=5),
       st.one_of(st.none(), our_metadata(), st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
       st.binary(max_size=256))
def test_fuzzed_headers_are_refused_cleanly(tensors, metadata, data):
    header = dict(tensors)
    if metadata is not None:
        header["__metadata__"] = metadata
    assert load_or_refuse(safetensors_bytes(header, data)) is None


absurd = st.sampled_from([{"latent_channels": 10 ** 9}, {"width": 10 ** 6}, {"image_size": 10 ** 6},
                          {"blocks": 10 ** 6}, {"downscale": 3}, {"architecture": "gan"}, {"channels": 2 ** 64}])


@given(st.one_of(absurd, st.dictionaries(st.sampled_from(["architecture", "latent_channels", "downscale", "width",
                                                          "blocks", "image_size", "channels", "extra"]),
                                         json_values, min_size=1, max_size=3)),
       st.dictionaries(st.sampled_from(["format", "format_version", "training", "model_id", "card", "pack_version"]),
                       st.one_of(st.none(), st.text(max_size=30), json_values.map(json.dumps)), max_size=2))
@example({"latent_channels": 10 ** 9}, {})
@example({"width": 10 ** 6}, {})
@example({"image_size": 10 ** 6}, {})
@example({}, {"format_version": "2"})
def test_fuzzed_metadata_on_a_real_file(good_file, config_changes, meta_changes):
    """Our own file with its config or other metadata rewritten: loads whole, or is refused before allocating."""
    path, _, meta, tensors = good_file
    meta = dict(meta)
    cfg = json.loads(meta["config"])
    cfg.update(config_changes)
    meta["config"] = json.dumps(cfg)
    for k, v in meta_changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    from safetensors.torch import save
    ae = load_or_refuse(save(tensors, metadata=meta))
    if ae is not None:
        assert ae.config == storage.validate_config(ae.config)
        assert all(torch.equal(ae.model.state_dict()[k[6:]], v) for k, v in tensors.items() if k.startswith("model."))


@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_bytes_anywhere_in_a_real_file(good_file, flips, cut):
    _, data, _, _ = good_file
    raw = bytearray(data)
    for where, value in flips:
        raw[int(where * len(raw))] = value
    if cut is not None:
        raw = raw[:int(cut * len(raw))]
    load_or_refuse(bytes(raw))


finite32 = st.floats(-1e6, 1e6, width=32)


@given(st.sampled_from(["conv", "conv-vae", "dense"]), st.integers(1, 6), st.sampled_from(DOWNSCALES[:4]),
       st.integers(4, 12), st.integers(0, 2), st.sampled_from([1, 3]), st.integers(4, 12), st.integers(0, 2 ** 31),
       st.integers(0, 10 ** 9), st.lists(finite32, max_size=20),
       st.dictionaries(st.text(max_size=10), st.one_of(finite32, st.text(max_size=20), st.booleans()), max_size=3))
def test_saved_models_load_back_bit_identical(arch, z, f, width, blocks, channels, size, seed, step, history, summary):
    cfg = default_config(arch, latent_channels=z, downscale=1 if arch == "dense" else f, width=width, blocks=blocks,
                         channels=channels, image_size=size)
    ae = Autoencoder.new(cfg, seed=seed)
    ae.state = TrainState(step=step, loss_history=history, summary=summary)
    with tempfile.TemporaryDirectory() as d:
        back = storage.load_autoencoder(storage.save_autoencoder(ae, os.path.join(d, "m.safetensors")))
    assert weights_equal(ae, back) and back.config == ae.config and back.model_id == ae.model_id
    assert back.state.step == step and back.state.loss_history == history
    # Fields the pack reads itself keep only values of their type (an edited file must not break the card).
    known = storage.SUMMARY_TYPES
    assert back.state.summary == {k: v for k, v in summary.items()
                                  if k not in known or (type(v) is not bool and isinstance(v, known[k]))}


# -- node inputs -------------------------------------------------------------------------

FLOAT_DTYPES = [torch.float32, torch.float32, torch.float16, torch.bfloat16, torch.float64]


@st.composite
def tensors(draw, shape, low=0.0, high=1.0):
    """A tensor of ``shape``: random values in a drawn range, some NaN/inf, odd dtypes, maybe not contiguous."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    lo, hi = draw(st.sampled_from([(low, high), (low, high), (-1.0, 2.0), (0.0, 0.0), (-1e4, 1e4), (-1e30, 1e30)]))
    t = torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
    if t.numel():
        for i in draw(st.lists(st.integers(0, t.numel() - 1), max_size=3)):
            t.view(-1)[i] = draw(st.sampled_from([NAN, INF, -INF]))
    t = t.to(dtype)
    if t.ndim >= 3 and draw(st.booleans()):  # a transposed view, as some nodes hand on
        t = t.transpose(-2, -3).contiguous().transpose(-2, -3)
    return t


def image_shapes():
    return st.one_of(
        st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 3, 3, 4])),
        st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(0, 12), st.integers(0, 5)),
        st.lists(st.integers(0, 8), min_size=0, max_size=5).map(tuple))


def latent_shapes(channels):
    return st.one_of(
        st.tuples(st.integers(1, 3), st.sampled_from([channels, channels, 4, 16, 1]), st.integers(1, 6),
                  st.integers(1, 6)),
        st.tuples(st.integers(0, 3), st.integers(0, 8), st.integers(0, 6), st.integers(0, 6)),
        st.lists(st.integers(0, 6), min_size=0, max_size=5).map(tuple))


def mask_shapes():
    return st.one_of(st.tuples(st.integers(1, 20), st.integers(1, 20)),
                     st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 20)),
                     st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple))


@pytest.fixture(scope="module")
def models():
    """One of each kind of model a node can be handed: trained plain, VAE and dense; untrained grayscale."""
    imgs = procedural(4, 16)
    fast = TrainSettings(steps=2, batch_size=2)
    return [train(tiny_ae("conv", latent_channels=4), imgs, fast),
            train(tiny_ae("conv-vae", latent_channels=4, downscale=2), imgs, fast),
            train(tiny_ae("dense", latent_channels=4, image_size=16), imgs, fast),
            tiny_ae("conv", latent_channels=3, downscale=2, channels=1)]


# Widget ranges kept small where the declared range would make the case slow (not wrong).
CAPS = {"steps": 2, "batch_size": 4, "frames": 12, "width": 64, "height": 64, "crop_size": 32, "passes": 3,
        "scale": 4, "columns": 6, "padding": 4, "max_directions": 6, "image_size": 16}
FILE_NODES = {"AtelierLoadAutoencoder", "AtelierSaveAutoencoder", "AtelierLoadImageFolder",  # fuzzed below
              "AtelierLoadDataset"}
FUZZED_NODES = sorted(set(NODE_CLASS_MAPPINGS) - FILE_NODES)


def widget(draw, name, kind, opts):
    if isinstance(kind, list):
        return draw(st.sampled_from(kind))
    if kind == "BOOLEAN":
        return draw(st.booleans())
    if kind == "INT":
        return draw(st.integers(opts["min"], min(opts["max"], CAPS.get(name, opts["max"]))))
    if kind == "FLOAT":
        return draw(st.floats(opts["min"], opts["max"]))
    return opts.get("default", "")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A lazy dataset of works of different sizes and aspect ratios."""
    folder = tmp_path_factory.mktemp("works")
    for i, (w, h) in enumerate([(40, 24), (16, 70), (33, 33)]):
        procedural_image(i, max(w, h)).resize((w, h)).save(folder / f"{i}.png")
    return WorkFolder(str(folder))


def link(draw, kind, models, ae, dataset=None):
    if kind == AUTOENCODER:
        return ae
    if kind == DATASET:
        return dataset
    if kind == "IMAGE":
        return draw(tensors(draw(image_shapes())))
    if kind == "LATENT":
        latent = {"samples": draw(tensors(draw(latent_shapes(ae.config["latent_channels"])), -3.0, 3.0))}
        if draw(st.booleans()):
            latent.update(draw(st.fixed_dictionaries({}, optional={
                "atelier_size": st.one_of(st.lists(st.integers(-2, 64), max_size=3), json_values),
                "atelier_architecture": st.one_of(st.sampled_from(["conv", "conv-vae", "dense"]), json_values),
                "atelier_model": st.one_of(st.just(ae.model_id), st.text(max_size=8))})))
        return latent
    if kind == "MASK":
        return draw(tensors(draw(mask_shapes())))
    if kind == "DIRECTIONS":
        z = codec.encode(ae, procedural(4, 16))["samples"]
        return NODE_CLASS_MAPPINGS["AtelierLatentDirections"]().find({"samples": z}, draw(st.integers(1, 3)))[0]
    raise KeyError(f"no fuzz strategy for the link type {kind}")


def tame(value):
    """Whether an input holds only finite, moderate numbers (then the outputs must be finite too)."""
    if isinstance(value, torch.Tensor):
        return bool(value.numel() == 0 or (torch.isfinite(value).all() and value.abs().max() <= 3))
    if isinstance(value, dict):
        return all(tame(v) for v in value.values())
    return True


def digest(value):
    return model_digest(value) if isinstance(value, Autoencoder) else deep_digest(value)


def check_output(kind, value, clean):
    if kind == "IMAGE":
        assert isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[-1] == 3
        if clean:
            assert value.dtype == torch.float32 and torch.isfinite(value).all()
            assert value.numel() == 0 or (value.min() >= 0 and value.max() <= 1)
    elif kind == "LATENT":
        assert isinstance(value, dict) and value["samples"].ndim == 4
        if clean:
            assert torch.isfinite(value["samples"]).all()
    elif kind == AUTOENCODER:
        with torch.inference_mode():  # a model made in inference mode is read in it
            assert isinstance(value, Autoencoder) and all(torch.isfinite(p).all() for p in value.model.parameters())


@pytest.mark.parametrize("node_id", FUZZED_NODES)
@given(data=st.data())
def test_nodes_take_any_input_and_answer_or_say_what_is_wrong(node_id, models, dataset, data):
    cls = NODE_CLASS_MAPPINGS[node_id]
    types = cls.INPUT_TYPES()
    ae = data.draw(st.sampled_from(models), label="autoencoder")
    inputs = {}
    for section in ("required", "optional"):
        for name, (kind, opts) in types.get(section, {}).items():
            if section == "optional" and data.draw(st.booleans(), label=f"omit {name}"):
                continue
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                inputs[name] = widget(data.draw, name, kind, opts)
            else:
                inputs[name] = link(data.draw, kind, models, ae, dataset)
    before = {k: digest(v) for k, v in inputs.items()}
    n = cls()
    try:
        with torch.inference_mode():
            out = getattr(n, cls.FUNCTION)(**inputs)
    except ValueError as e:
        assert str(e).startswith(error_start(node_id)), f"unclear error: {e!r}"
        out = None
    assert {k: digest(v) for k, v in inputs.items()} == before, "a node changed its inputs"
    if out is not None:
        result = out["result"] if isinstance(out, dict) else out
        clean = all(tame(v) for v in inputs.values() if not isinstance(v, Autoencoder)) and \
            all(math.isfinite(v) for v in inputs.values() if isinstance(v, float))
        for kind, value in zip(cls.RETURN_TYPES, result):
            check_output(kind, value, clean)


# -- file names and folders --------------------------------------------------------------

names = st.one_of(st.text(max_size=40),
                  st.lists(st.sampled_from(["..", ".", "", "a", "/", "\\", "C:", "~", "x.safetensors", "\x00", "<", "|",
                                            "é" * 70]), max_size=6).map("/".join))


@given(names)
@example("../escape")
@example("/etc/passwd")
@example("a/" * 60 + "b")
@example("é" * 200)
def test_save_prefixes_stay_inside_the_models_folder(prefix):
    with tempfile.TemporaryDirectory() as root:
        models_dir = os.path.join(root, "models")
        os.mkdir(models_dir)
        with bridge.folders(models_dir=models_dir):
            try:
                path = NODE_CLASS_MAPPINGS["AtelierSaveAutoencoder"]().save(TINY, prefix)["result"][0]
            except ValueError as e:
                assert str(e).startswith(error_start("AtelierSaveAutoencoder"))
                path = None
        assert os.listdir(root) == ["models"]
        if path is not None:
            real = os.path.realpath(path)
            assert real.startswith(os.path.realpath(models_dir) + os.sep) and real.endswith(".safetensors")
            assert weights_equal(storage.load_autoencoder(path), TINY)


TINY = tiny_ae("conv", width=4, latent_channels=1)


@given(st.one_of(names, names.map(lambda s: s + ".safetensors")))
@example("../outside.safetensors")
@example("sub/../../outside.safetensors")
@example("./inside.safetensors")
def test_load_names_never_reach_outside_the_models_folder(name):
    with tempfile.TemporaryDirectory() as root:
        models_dir = os.path.join(root, "models")
        os.mkdir(models_dir)
        storage.save_autoencoder(TINY, os.path.join(models_dir, "inside.safetensors"))
        storage.save_autoencoder(tiny_ae("conv", width=4, latent_channels=1, seed=1),
                                 os.path.join(root, "outside.safetensors"))
        with bridge.folders(models_dir=models_dir):
            NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].IS_CHANGED(name)
            try:
                ae = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"]().load(name)["result"][0]
            except ValueError as e:
                assert str(e).startswith(error_start("AtelierLoadAutoencoder"))
                return
    assert weights_equal(ae, TINY)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF"}


def write_image(path, mode, w, h, seed):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    try:
        img.save(path, format=FORMATS[os.path.splitext(path)[1]])
        return True
    except (OSError, ValueError, KeyError):  # a mode this format cannot hold
        if os.path.exists(path):
            os.remove(path)
        return False


@given(st.lists(st.tuples(st.sampled_from(MODES), st.sampled_from(sorted(FORMATS)), st.integers(1, 40),
                          st.integers(1, 40)), min_size=1, max_size=4),
       st.lists(st.tuples(st.sampled_from(sorted(IMAGE_EXTENSIONS)), st.binary(max_size=64)), max_size=2),
       st.integers(8, 24), st.sampled_from(["resize", "center-crop", "random-crops"]), st.integers(0, 5))
def test_image_folders_of_every_kind_load_or_name_the_bad_file(images, junk, size, mode, count):
    with tempfile.TemporaryDirectory() as d:
        ok = [write_image(os.path.join(d, f"img{i}{ext}"), m, w, h, i) for i, (m, ext, w, h) in enumerate(images)]
        for i, (ext, data) in enumerate(junk):
            with open(os.path.join(d, f"junk{i}{ext}"), "wb") as f:
                f.write(data)
        try:
            (out,) = NODE_CLASS_MAPPINGS["AtelierLoadImageFolder"]().load(d, size, mode, count)
        except ValueError as e:
            assert str(e).startswith(error_start("AtelierLoadImageFolder")) and ("cannot read junk" in str(e)
                                                                         or "has no images" in str(e)), str(e)
            return
    assert any(ok) and out.shape[1:] == (size, size, 3) and out.dtype == torch.float32
    assert out.shape[0] == (count or sum(ok) + len(junk)) if mode == "random-crops" else 1 <= out.shape[0] <= sum(ok)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
