"""Safetensors files: exact round trips, atomic writes, and refusal of hostile files."""
import json
import os
import struct
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from autoencoder_atelier.models import __version__, storage
from autoencoder_atelier.models.storage import FORMAT, FORMAT_VERSION, ModelFileError
from autoencoder_atelier.models.train import TrainSettings, train

from helpers import (header_length, procedural, read_safetensors, resave, tiny_ae,
                     weights_equal, write_raw_safetensors)


@pytest.fixture(scope="module")
def trained():
    """A conv model with everything a file can hold: optimizer moments, history, stats, summary."""
    return train(tiny_ae("conv", latent_channels=4), procedural(4, 32),
                 TrainSettings(steps=3, batch_size=2, learning_rate=5e-3))


@pytest.fixture
def saved(trained, tmp_path):
    return storage.save_autoencoder(trained, tmp_path / "good.safetensors")


@pytest.fixture
def no_allocation(monkeypatch):
    """Records every network built on a real device (building on the meta device is free)."""
    real = storage.build_network
    record = {"meta": 0, "real": 0}

    def spy(config):
        net = real(config)
        record["meta" if next(net.parameters()).device.type == "meta" else "real"] += 1
        return net

    monkeypatch.setattr(storage, "build_network", spy)
    return record


def assert_refused(path, no_allocation, *fragments):
    with pytest.raises(ModelFileError) as e:
        storage.load_autoencoder(path)
    msg = str(e.value)
    assert msg.startswith(os.path.basename(str(path)) + ":"), msg
    for f in fragments:
        assert f.lower() in msg.lower(), msg
    assert no_allocation["real"] == 0, "the model was allocated before the file was refused"
    return msg


# -- round trips -------------------------------------------------------------------------

def assert_same(a, b):
    assert weights_equal(a, b)
    assert a.config == b.config and a.model_id == b.model_id
    assert a.state.step == b.state.step
    assert a.state.loss_history == b.state.loss_history
    assert a.state.summary == b.state.summary
    if a.state.optimizer:
        assert a.state.optimizer.keys() == b.state.optimizer.keys()
        for i in a.state.optimizer:
            for k in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(a.state.optimizer[i][k], b.state.optimizer[i][k]), (i, k)
    else:
        assert not b.state.optimizer
    if a.state.latent_stats:
        for k in ("mean", "cov"):
            assert torch.equal(a.state.latent_stats[k], b.state.latent_stats[k])
    else:
        assert b.state.latent_stats is None


@pytest.mark.parametrize("arch,extra", [("conv", {}), ("conv-vae", {}), ("dense", {}), ("conv", {"channels": 1}),
                                        ("conv", {"downscale": 1, "blocks": 0})])
def test_round_trip_is_bit_identical(arch, extra, tmp_path):
    imgs = procedural(4, 16 if arch == "dense" else 32)
    ae = train(tiny_ae(arch, **extra), imgs, TrainSettings(steps=2, batch_size=2, learning_rate=5e-3))
    ae.state.summary["note"] = "café ✓"
    assert ae.state.optimizer and ae.state.latent_stats and ae.state.loss_history
    path = storage.save_autoencoder(ae, tmp_path / "m.safetensors")
    back = storage.load_autoencoder(path)
    assert_same(ae, back)
    assert back.name == "m" and not back.model.training
    # a second round trip changes nothing either
    again = storage.load_autoencoder(storage.save_autoencoder(back, tmp_path / "m2.safetensors"))
    assert_same(back, again)


def test_untrained_model_round_trip(tmp_path):
    ae = tiny_ae("conv")
    back = storage.load_autoencoder(storage.save_autoencoder(ae, tmp_path / "fresh.safetensors"))
    assert_same(ae, back)
    assert back.state.optimizer is None and back.state.loss_history == [] and back.state.latent_stats is None


def test_loaded_model_behaves_the_same(saved, trained):
    back = storage.load_autoencoder(saved)
    x = procedural(2, 32).movedim(-1, 1)
    with torch.no_grad():
        assert torch.equal(back.model.decode(back.model.encode(x)), trained.model.decode(trained.model.encode(x)))


def test_file_contents_and_metadata(saved, trained):
    meta, tensors = read_safetensors(saved)
    assert meta["format"] == FORMAT == "autoencoder-atelier"
    assert meta["format_version"] == str(FORMAT_VERSION)
    assert json.loads(meta["config"]) == trained.config
    assert meta["model_id"] == trained.model_id
    training = json.loads(meta["training"])
    assert training["step"] == 3 and training["summary"]["steps"] == 3
    assert meta["pack_version"] == __version__
    assert meta["card"].startswith(f"Autoencoder Atelier {__version__} model\nconv autoencoder")
    assert "T" in meta["saved"] and meta["saved"].endswith("+00:00")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert set(k.split(".")[0] for k in tensors) == {"model", "optim", "train", "stats"}
    assert tensors["train.loss_history"].shape == (3,)
    config, card, m = storage.read_info(saved)
    assert config == trained.config and card == meta["card"] and m["model_id"] == trained.model_id


def test_save_creates_folders_and_returns_the_path(trained, tmp_path):
    target = tmp_path / "a" / "b" / "deep.safetensors"
    assert storage.save_autoencoder(trained, target) == str(target)
    assert target.is_file() and sorted(os.listdir(target.parent)) == ["deep.safetensors"]


def test_half_precision_files_load_as_float32(saved, tmp_path):
    _, tensors = read_safetensors(saved)
    half = {k: v.half() for k, v in tensors.items() if k.startswith("model.")}
    p = resave(saved, tmp_path / "half.safetensors", tensors=half)
    back = storage.load_autoencoder(p)
    assert all(v.dtype == torch.float32 for v in back.model.state_dict().values())


@pytest.fixture
def pickle_like_file(tmp_path):
    """A valid file whose header length is 128 mod 256, so that its first byte is 0x80.

    Safetensors pads headers to a multiple of 8, so 1 header length in 32 looks like this.
    """
    ae = tiny_ae("conv")
    for k in range(400):
        ae.state.summary["note"] = "x" * k
        path = storage.save_autoencoder(ae, tmp_path / "m.safetensors")
        if header_length(path) % 256 == 0x80:
            assert open(path, "rb").read(1) == b"\x80"
            with safe_open(path, framework="pt") as f:  # the safetensors library reads it fine
                assert f.metadata()["format"] == FORMAT
            return ae, path
    pytest.fail("could not produce a header length ending in byte 0x80")


def test_valid_file_whose_header_length_starts_with_0x80_loads(pickle_like_file):
    """Regression: read_header once sniffed byte 0x80 as a pickle before reading the header."""
    ae, path = pickle_like_file
    assert_same(ae, storage.load_autoencoder(path))


# -- atomic writes -----------------------------------------------------------------------

@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_write_leaves_nothing_behind(trained, tmp_path, monkeypatch, exc):
    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"partial")
        raise exc

    monkeypatch.setattr(storage, "save_file", half_write)
    with pytest.raises(type(exc)):
        storage.save_autoencoder(trained, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


def test_failed_rename_leaves_nothing_behind_and_keeps_the_old_file(trained, tmp_path, monkeypatch):
    target = tmp_path / "m.safetensors"
    storage.save_autoencoder(tiny_ae("conv"), target)
    old = target.read_bytes()

    def broken_replace(src, dst):
        raise PermissionError("read-only folder")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", broken_replace)
        with pytest.raises(PermissionError):
            storage.save_autoencoder(trained, target)
    assert os.listdir(tmp_path) == ["m.safetensors"] and target.read_bytes() == old


# -- hostile files -----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["4", "8", "20", "header-1", "header", "half", "end-1"])
def test_truncated_files_are_refused(saved, tmp_path, no_allocation, where):
    data = open(saved, "rb").read()
    n = 8 + header_length(saved)
    cut = {"4": 4, "8": 8, "20": 20, "header-1": n - 1, "header": n, "half": (n + len(data)) // 2,
           "end-1": len(data) - 1}[where]
    p = tmp_path / "cut.safetensors"
    p.write_bytes(data[:cut])
    assert_refused(p, no_allocation, "re-save")


def test_empty_file_is_refused(tmp_path, no_allocation):
    p = tmp_path / "empty.safetensors"
    p.write_bytes(b"")
    assert_refused(p, no_allocation, "too short")


@pytest.mark.parametrize("zipfile", [True, False])
def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(trained, tmp_path, no_allocation, monkeypatch,
                                                                     zipfile):
    p = tmp_path / "ckpt.safetensors"
    torch.save(trained.model.state_dict(), p, _use_new_zipfile_serialization=zipfile)
    import pickle
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    assert_refused(p, no_allocation, "pickle", "never loaded")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_refused(tmp_path, no_allocation, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).numpy().tobytes()
    if seed >= 3:  # a plausible header length followed by garbage
        data = struct.pack("<Q", 1000) + data[8:]
    p = tmp_path / "noise.safetensors"
    p.write_bytes(data)
    assert_refused(p, no_allocation)


def test_plain_safetensors_without_our_metadata_is_refused(tmp_path, no_allocation):
    p = tmp_path / "sd_vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}, str(p))
    msg = assert_refused(p, no_allocation, "not an Autoencoder Atelier model")
    assert "models/vae" in msg  # points the user at the right place
    p2 = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p2), metadata={"format": "pt"})
    assert_refused(p2, no_allocation, "not an Autoencoder Atelier model")


@pytest.mark.parametrize("change", [
    {"latent_channels": 10 ** 9}, {"width": 10 ** 6}, {"image_size": 10 ** 9}, {"blocks": 10 ** 6},
    {"width": 512, "blocks": 8, "downscale": 16, "latent_channels": 256}, {"architecture": "gan"},
    {"downscale": 3}, {"width": True},
])
def test_absurd_configs_fail_fast_before_any_allocation(saved, tmp_path, no_allocation, change):
    cfg = json.loads(read_safetensors(saved)[0]["config"])
    cfg.update(change)
    p = resave(saved, tmp_path / "absurd.safetensors", meta={"config": json.dumps(cfg)})
    t = time.perf_counter()
    assert_refused(p, no_allocation, "config is invalid")
    assert time.perf_counter() - t < 1.0
    assert no_allocation["meta"] == 0  # refused before even a shape check


@pytest.mark.parametrize("config", ["{not json", "[1, 2]", "null", '"conv"', "{" * 5000, "x" * 20000])
def test_malformed_config_metadata_is_refused(saved, tmp_path, no_allocation, config):
    p = resave(saved, tmp_path / "bad.safetensors", meta={"config": config})
    assert_refused(p, no_allocation, "config")


def test_missing_config_is_refused(saved, tmp_path, no_allocation):
    p = resave(saved, tmp_path / "noconfig.safetensors", meta={"config": None})
    assert_refused(p, no_allocation, "no 'config'")


def test_float_channels_in_config_is_a_model_file_error(saved, tmp_path, no_allocation):
    cfg = json.loads(read_safetensors(saved)[0]["config"])
    cfg["channels"] = 3.0
    p = resave(saved, tmp_path / "floaty.safetensors", meta={"config": json.dumps(cfg)})
    assert_refused(p, no_allocation, "config")


def test_wrong_tensor_shapes_are_refused(saved, tmp_path, no_allocation):
    _, tensors = read_safetensors(saved)
    name = next(k for k in tensors if k.startswith("model.") and tensors[k].ndim == 4)
    p = resave(saved, tmp_path / "shape.safetensors", tensors={name: torch.zeros(3, 3, 3, 3)})
    assert_refused(p, no_allocation, f"tensor {name!r} has shape [3, 3, 3, 3] but the config needs")


def test_config_that_does_not_match_the_weights_is_refused(saved, tmp_path, no_allocation):
    cfg = json.loads(read_safetensors(saved)[0]["config"])
    cfg["width"] = 16
    p = resave(saved, tmp_path / "edited.safetensors", meta={"config": json.dumps(cfg)})
    assert_refused(p, no_allocation, "do not match its config")


def test_missing_and_unexpected_tensors_are_refused(saved, tmp_path, no_allocation):
    _, tensors = read_safetensors(saved)
    first = next(k for k in tensors if k.startswith("model."))
    assert_refused(resave(saved, tmp_path / "missing.safetensors", drop=[first]), no_allocation, "missing")
    assert_refused(resave(saved, tmp_path / "extra.safetensors", tensors={"model.evil": torch.zeros(1)}),
                   no_allocation, "unexpected tensor 'model.evil'")
    assert_refused(resave(saved, tmp_path / "int.safetensors",
                          tensors={first: tensors[first].to(torch.int32)}), no_allocation, "floating point")
    optim = [k for k in tensors if k.startswith("optim.")][:1]
    assert_refused(resave(saved, tmp_path / "optim.safetensors", drop=optim), no_allocation,
                   "optimizer state is incomplete")
    assert_refused(resave(saved, tmp_path / "hist.safetensors", tensors={"train.loss_history": torch.zeros(2, 2)}),
                   no_allocation, "loss history")


def test_non_finite_weights_are_refused(saved, tmp_path, no_allocation):
    _, tensors = read_safetensors(saved)
    name = next(k for k in tensors if k.startswith("model."))
    bad = tensors[name].clone()
    bad.view(-1)[0] = float("nan")
    assert_refused(resave(saved, tmp_path / "nan.safetensors", tensors={name: bad}), no_allocation, "NaN")


@pytest.mark.parametrize("version,fragment", [("2", "newer"), ("999999", "newer"), ("1.0", "not a number"),
                                              ("", "not a number"), ("v1", "not a number"),
                                              ("9" * 40, "not a number")])
def test_format_version_from_the_future_or_garbage(saved, tmp_path, no_allocation, version, fragment):
    p = resave(saved, tmp_path / "future.safetensors", meta={"format_version": version})
    msg = assert_refused(p, no_allocation, fragment)
    if fragment == "newer":
        assert "Update the Autoencoder Atelier" in msg


@pytest.mark.parametrize("training", ["{not json", "[]", '{"step": -1}', '{"step": "10"}', '{"step": 1.5}',
                                      '{"step": 10, "summary": []}', '{"step": 1e400}', '{"step": 1000000000000}',
                                      "null", '{"step": 1, "loss_scale": [NaN, 0]}',
                                      '{"step": 1, "loss_scale": [-1, 0]}',
                                      '{"step": 1, "loss_scale": [1e400, 0]}', '{"step": 1, "loss_scale": [1024, 0.5]}',
                                      '{"step": 1, "loss_scale": [true, 0]}', '{"step": 1, "loss_scale": "1024"}',
                                      '{"step": 1, "loss_scale": [1024, 0, 0]}'])
def test_malformed_training_metadata_is_refused(saved, tmp_path, no_allocation, training):
    p = resave(saved, tmp_path / "training.safetensors", meta={"training": training})
    assert_refused(p, no_allocation, "training")


def test_training_summary_is_sanitised(saved, tmp_path):
    summary = {"ok": 1, "list": [1, 2], "nested": {"a": 1}, "long_list": list(range(10)), "k" * 100: "v"}
    p = resave(saved, tmp_path / "summary.safetensors",
               meta={"training": json.dumps({"step": 3, "summary": summary})})
    s = storage.load_autoencoder(p).state.summary
    assert s["ok"] == 1 and s["list"] == [1, 2] and "nested" not in s and "long_list" not in s
    assert "k" * 64 in s and "k" * 100 not in s


def test_bad_model_id_gets_a_fresh_one(saved, tmp_path):
    p = resave(saved, tmp_path / "id.safetensors", meta={"model_id": "../../etc/passwd"})
    ae = storage.load_autoencoder(p)
    assert ae.model_id != "../../etc/passwd" and len(ae.model_id) == 32


MALFORMED_HEADERS = {
    "not json": (b"not json at all!", "header"),
    "json array": (b"[1, 2, 3]       ", "header"),
    "utf-16 bytes": (b"\xff\xfe\x00\x00" * 4, "header"),
    "broken json object": (b'{"w": {"dtype": ', "not valid safetensors JSON"),
    "bad utf-8 in object": (b'{"\xff\xfe": 1}    ', "not valid safetensors JSON"),
    "deep nesting": ('{"a": ' + "[" * 100000 + "]" * 100000 + "}", "not valid safetensors JSON"),
    "metadata values not strings": ({"__metadata__": {"format": 1}}, "map of strings"),
    "metadata not a map": ({"__metadata__": ["x"]}, "map of strings"),
    "negative dimension": ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "malformed"),
    "offsets reversed": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "malformed"),
    "no offsets": ({"w": {"dtype": "F32", "shape": [1]}}, "malformed"),
    "entry not a map": ({"w": "nope"}, "malformed"),
    "float dimension": ({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, "malformed"),
    "data past the end": ({"w": {"dtype": "F32", "shape": [10 ** 12], "data_offsets": [0, 4 * 10 ** 12]}},
                          "truncated"),
}


@pytest.mark.parametrize("header,fragment", list(MALFORMED_HEADERS.values()), ids=list(MALFORMED_HEADERS))
def test_malformed_headers_are_refused(tmp_path, no_allocation, header, fragment):
    if isinstance(header, str):
        header = header.encode()
    p = write_raw_safetensors(tmp_path / "raw.safetensors", header, b"\x00" * 16)
    assert_refused(p, no_allocation, fragment)


def test_overlapping_tensor_data_is_refused(saved, tmp_path, no_allocation):
    """A header that passes our checks but whose offsets safetensors itself rejects."""
    raw = open(saved, "rb").read()
    n = header_length(saved)
    header = json.loads(raw[8:8 + n])
    names = sorted((k for k in header if k.startswith("model.") and header[k]["shape"] == [8]),
                   key=lambda k: header[k]["data_offsets"])
    header[names[1]]["data_offsets"] = header[names[0]]["data_offsets"]  # two tensors on the same bytes
    p = write_raw_safetensors(tmp_path / "overlap.safetensors", header, raw[8 + n:])
    assert_refused(p, no_allocation, "could not read tensors")


def test_huge_declared_header_is_refused_without_reading_it(tmp_path, no_allocation):
    p = tmp_path / "huge.safetensors"
    p.write_bytes(struct.pack("<Q", 10 ** 15) + b"{}")
    assert_refused(p, no_allocation, "header is cut off")


def test_missing_file_and_folder(tmp_path, no_allocation):
    assert_refused(tmp_path / "nope.safetensors", no_allocation, "file not found")
    d = tmp_path / "dir.safetensors"
    d.mkdir()
    assert_refused(d, no_allocation, "not a regular file")


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


# -- every tensor checked, from one read ----------------------------------------------------

def _with(saved, tmp_path, **changes):
    """A copy of ``saved`` with tensors changed by ``changes`` (name with '__' for '.': fn(tensor) -> tensor)."""
    _, tensors = read_safetensors(saved)
    new = {k.replace("__", "."): fn(tensors[k.replace("__", ".")].clone()) for k, fn in changes.items()}
    return resave(saved, tmp_path / "changed.safetensors", tensors=new)


def _set(index, value):
    def change(t):
        t.view(-1)[index] = value
        return t
    return change


def _asymmetric(t):
    t[0, 1] += 1.0
    return t


def _negative_variance(t):
    return t - torch.eye(t.shape[0]) * (t.diagonal().max() * 3 + 1)


BAD_VALUES = {
    "stats mean NaN": (dict(stats__mean=_set(0, float("nan"))), "'stats.mean' contains NaN"),
    "stats cov inf": (dict(stats__cov=_set(0, float("inf"))), "'stats.cov' contains NaN or infinite"),
    "cov not symmetric": (dict(stats__cov=_asymmetric), "not symmetric"),
    "cov not PSD": (dict(stats__cov=_negative_variance), "positive semi-definite"),
    "optimizer moment NaN": (dict(optim__0__exp_avg=_set(0, float("nan"))), "'optim.0.exp_avg' contains NaN"),
    "negative step": (dict(optim__0__step=lambda t: -t), "step count is negative"),
    "fractional step": (dict(optim__1__step=lambda t: t + 0.5), "fractional"),
    "negative second moment": (dict(optim__2__exp_avg_sq=_set(0, -1.0)), "second moments"),
    "loss history NaN": (dict(train__loss_history=_set(1, float("nan"))), "'train.loss_history' contains NaN"),
}


@pytest.mark.parametrize("changes,fragment", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_every_tensor_group_is_validated_before_use(saved, tmp_path, no_allocation, changes, fragment):
    assert_refused(_with(saved, tmp_path, **changes), no_allocation, fragment)


def test_half_of_the_latent_statistics_is_refused(saved, tmp_path, no_allocation):
    assert_refused(resave(saved, tmp_path / "half.safetensors", drop=["stats.cov"]), no_allocation, "incomplete")


def test_a_group_another_module_adds_is_validated_the_same_way(saved, tmp_path, no_allocation, monkeypatch):
    """The prior and the discriminator add one TENSOR_GROUPS entry: names, shapes and values are then checked."""
    def no_negatives(t):
        return "prior weights are negative" if any((v < 0).any() for v in t.values()) else None

    monkeypatch.setitem(storage.TENSOR_GROUPS, "prior",
                        storage.TensorGroup(lambda config, params, meta: {"prior.w": (config["latent_channels"],)},
                                            no_negatives))
    z = storage.load_autoencoder(saved).config["latent_channels"]
    good = resave(saved, tmp_path / "prior.safetensors", tensors={"prior.w": torch.ones(z)})
    storage.load_autoencoder(good)
    no_allocation["real"] = 0
    assert_refused(resave(saved, tmp_path / "neg.safetensors", tensors={"prior.w": -torch.ones(z)}),
                   no_allocation, "prior weights are negative")
    assert_refused(resave(saved, tmp_path / "shape.safetensors", tensors={"prior.w": torch.ones(z + 1)}),
                   no_allocation, "'prior.w' has shape")
    assert_refused(resave(saved, tmp_path / "other.safetensors", tensors={"prior.x": torch.ones(z)}),
                   no_allocation, "unexpected tensor 'prior.x'")


def test_a_file_truncated_while_it_is_read_is_a_clear_error(saved, monkeypatch):
    """Between the header and the data another program cuts the file: no SIGBUS (nothing is memory-mapped),
    the pack's own error."""
    real = storage._ModelFile._read_header

    def then_truncate(self):
        out = real(self)
        os.truncate(self.path, os.path.getsize(self.path) // 2)
        return out

    monkeypatch.setattr(storage._ModelFile, "_read_header", then_truncate)
    with pytest.raises(ModelFileError, match="good.safetensors: the file changed while it was read"):
        storage.load_autoencoder(saved)


def test_a_file_replaced_while_it_is_read_loads_what_was_checked(saved, trained, monkeypatch):
    """The header and the tensors come from one handle: a save replacing the file meanwhile changes nothing."""
    real = storage._ModelFile._read_header

    def then_replace(self):
        out = real(self)
        storage.save_autoencoder(tiny_ae("conv", seed=7, latent_channels=6), self.path)
        return out

    monkeypatch.setattr(storage._ModelFile, "_read_header", then_replace)
    assert weights_equal(storage.load_autoencoder(saved), trained)


def test_a_file_rewritten_in_place_while_it_is_read_is_refused_or_loaded_checked(saved, monkeypatch):
    real = storage._ModelFile._read_header

    def then_scribble(self):
        out = real(self)
        with open(self.path, "r+b") as f:  # same inode, same length, NaN bytes over the tensors
            f.seek(os.path.getsize(self.path) - 4096)
            f.write(b"\xff" * 4096)
        return out

    monkeypatch.setattr(storage._ModelFile, "_read_header", then_scribble)
    with pytest.raises(ModelFileError, match="contains? NaN or infinite"):
        storage.load_autoencoder(saved)


def test_loading_never_maps_the_file(saved, trained, monkeypatch):
    import mmap

    import safetensors

    def refused(*a, **k):
        raise AssertionError("memory-mapped or re-opened through safetensors")

    monkeypatch.setattr(mmap, "mmap", refused)
    monkeypatch.setattr(safetensors, "safe_open", refused)
    monkeypatch.setattr(storage, "safe_open", refused, raising=False)
    opened = []
    real_open, real_os_open = open, os.open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_os_open(p, *a, **k))
    assert weights_equal(storage.load_autoencoder(saved), trained)
    assert opened == [os.fspath(saved)]  # one handle for size, header and tensors


def test_errors_from_building_the_network_become_model_file_errors(saved, monkeypatch):
    def broken(self, state_dict, *a, **k):
        raise RuntimeError("Error(s) in loading state_dict")

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", broken)
    with pytest.raises(ModelFileError, match="good.safetensors: its weights do not fit the network"):
        storage.load_autoencoder(saved)


@pytest.mark.parametrize("summary", [{"final_loss": "low", "data_size": [1, 2]}, {"final_loss": [0.1]},
                                     {"final_loss": None, "data_size": "many", "steps": 1.5},
                                     {"stopped_early": 5, "precision": ["bf16"]}, {"final_loss": True},
                                     {"psnr": {"a": 1}}])
def test_summary_fields_of_the_wrong_type_never_break_loading_or_the_card(saved, tmp_path, summary):
    p = resave(saved, tmp_path / "summary.safetensors", meta={"training": json.dumps({"step": 3, "summary": summary})})
    ae = storage.load_autoencoder(p)
    assert not set(summary) & set(ae.state.summary)
    assert "trained 3 steps" in storage.read_card(p) and "trained 3 steps" in storage.card_text(ae)
