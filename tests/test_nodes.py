"""The ComfyUI node classes: schema, and behaviour of model, latent and training nodes."""
import os

import pytest
import torch
from safetensors.torch import save_file

import autoencoder_atelier
from autoencoder_atelier.models import storage
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.train import TrainSettings
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, bridge

from helpers import deep_digest, error_start, model_digest, node, procedural, refusal, tiny_ae, weights_equal

SPEC_IDS = {"AtelierNewAutoencoder", "AtelierLoadAutoencoder", "AtelierSaveAutoencoder", "AtelierLoadImageFolder",
            "AtelierTrainAutoencoder", "AtelierEncode", "AtelierDecode", "AtelierLatentMix"}
SPEC_INPUTS = {
    "AtelierNewAutoencoder": {"architecture", "latent_channels", "downscale", "width", "image_size", "seed"},
    "AtelierLoadAutoencoder": {"ae_name"},
    "AtelierSaveAutoencoder": {"autoencoder", "filename_prefix"},
    "AtelierLoadImageFolder": {"folder", "size", "mode", "count"},
    # images became optional beside dataset (issue 17); test_image_nodes checks both
    "AtelierTrainAutoencoder": {"autoencoder", "steps", "batch_size", "learning_rate", "seed", "loss"},
    "AtelierEncode": {"autoencoder", "images"},
    "AtelierDecode": {"autoencoder", "latent"},
    "AtelierLatentMix": {"latent_a", "latent_b", "factor", "mode"},
}
ALL_IDS = sorted(NODE_CLASS_MAPPINGS)  # the specified nodes plus extras (Image Grid, ...): all get schema checks


def digest(value):
    return model_digest(value) if isinstance(value, Autoencoder) else deep_digest(value)


def run(node_id, **inputs):
    """Call a node like ComfyUI does (in inference mode), checking it changes none of its inputs."""
    n = node(node_id)
    before = {k: digest(v) for k, v in inputs.items()}
    with torch.inference_mode():
        out = getattr(n, type(n).FUNCTION)(**inputs)
    after = {k: digest(v) for k, v in inputs.items()}
    changed = [k for k in inputs if before[k] != after[k]]
    assert not changed, f"{node_id} mutated its inputs {changed}"
    result = out["result"] if isinstance(out, dict) else out
    assert isinstance(result, tuple) and len(result) == len(type(n).RETURN_TYPES)
    return result


def test_the_mutation_check_notices_in_place_changes():
    ae, latent = tiny_ae("conv"), {"samples": torch.zeros(1, 8, 2, 2), "atelier_size": [8, 8]}
    before_ae, before_latent = digest(ae), digest(latent)
    latent["samples"][0, 0, 0, 0] = 1e-30
    with torch.no_grad():
        next(ae.model.parameters()).view(-1)[0] += 1e-6
    assert digest(latent) != before_latent and digest(ae) != before_ae
    ae2 = tiny_ae("conv")
    before = digest(ae2)
    ae2.state.loss_history.append(0.1)
    assert digest(ae2) != before


# -- schema ------------------------------------------------------------------------------

def test_node_ids_are_exactly_the_specified_ones():
    ids = set(NODE_CLASS_MAPPINGS)
    assert SPEC_IDS <= ids
    assert "AtelierImageGrid" in ids
    assert all(i.startswith("Atelier") for i in ids - SPEC_IDS)  # extras only in our own namespace
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == ids
    assert all(name.endswith("(Atelier)") for name in NODE_DISPLAY_NAME_MAPPINGS.values())


def test_package_exports_the_mappings():
    assert autoencoder_atelier.NODE_CLASS_MAPPINGS is NODE_CLASS_MAPPINGS
    assert autoencoder_atelier.NODE_DISPLAY_NAME_MAPPINGS is NODE_DISPLAY_NAME_MAPPINGS
    assert isinstance(autoencoder_atelier.__version__, str)


@pytest.mark.parametrize("node_id", ALL_IDS)
def test_node_schema(node_id, tmp_dirs):
    cls = NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY.startswith("Autoencoder Atelier")
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION.strip()) > 20
    assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert all(isinstance(t, str) and t.strip() for t in cls.OUTPUT_TOOLTIPS)
    assert callable(getattr(cls, cls.FUNCTION))
    types = cls.INPUT_TYPES()
    assert set(types) <= {"required", "optional", "hidden"} and types["required"]
    for section in ("required", "optional"):
        for name, spec in types.get(section, {}).items():
            assert isinstance(spec, tuple) and len(spec) == 2, name
            kind, opts = spec
            assert isinstance(opts.get("tooltip"), str) and opts["tooltip"].strip(), f"{node_id}.{name} has no tooltip"
            if isinstance(kind, list):
                assert kind and all(isinstance(o, str) for o in kind)
                if "default" in opts:
                    assert opts["default"] in kind, name
            elif kind in ("INT", "FLOAT"):
                assert opts["min"] <= opts["default"] <= opts["max"], name
    assert SPEC_INPUTS.get(node_id, set()) <= set(types["required"])


def test_save_is_an_output_node():
    assert NODE_CLASS_MAPPINGS["AtelierSaveAutoencoder"].OUTPUT_NODE is True


def test_function_signatures_accept_every_declared_input(tmp_dirs):
    import inspect
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        types = cls.INPUT_TYPES()
        for name in types["required"]:
            assert name in params and params[name].default is inspect.Parameter.empty, (node_id, name)
        for name in types.get("optional", {}):
            assert name in params and params[name].default is not inspect.Parameter.empty, (node_id, name)


def test_widget_signature_and_core_defaults_agree(tmp_dirs):
    """One default per input: the widget's equals the function's (optional inputs) and, for Train, the training
    core's (TrainSettings), so train() from Python behaves like the node; every training option is a widget."""
    import dataclasses
    import inspect
    core = dataclasses.asdict(TrainSettings())
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        types = cls.INPUT_TYPES()
        widgets = {name: spec[1]["default"] for section in types.values() for name, spec in section.items()
                   if len(spec) > 1 and "default" in spec[1]}
        for name in types.get("optional", {}):
            if name in widgets:
                assert params[name].default == widgets[name], (node_id, name)
        if node_id == "AtelierTrainAutoencoder":
            exposed = set(core) - {"warmup"}   # the one option only Python callers set
            assert set(widgets) >= exposed and {n: widgets[n] for n in exposed} == {n: core[n] for n in exposed}


def test_only_the_packs_own_errors_become_node_messages(monkeypatch):
    from autoencoder_atelier.nodes import latent_nodes

    def bug(*a, **k):
        raise TypeError("a programming error")

    monkeypatch.setattr(latent_nodes, "mix", bug)
    z = {"samples": torch.zeros(1, 4, 2, 2)}
    with pytest.raises(TypeError, match="a programming error"):   # itself, traceback and all
        node("AtelierLatentMix").mix(z, z, 0.5, "lerp")
    with pytest.raises(ValueError, match=refusal("AtelierLatentWalk", "a walk needs at least 2 keyframe")) as e:
        node("AtelierLatentWalk").walk(z, 4, "slerp", "linear", False)
    assert type(e.value) is ValueError and e.value.__cause__ is None and e.value.__context__ is None


# -- New / Save / Load -------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["conv", "conv-vae", "dense"])
def test_new_autoencoder(arch):
    (ae,) = run("AtelierNewAutoencoder", architecture=arch, latent_channels=4, downscale="8", width=8,
                image_size=16, seed=3)
    assert isinstance(ae, Autoencoder) and ae.architecture == arch and ae.config["latent_channels"] == 4
    assert ae.config["downscale"] == (1 if arch == "dense" else 8)
    (same,) = run("AtelierNewAutoencoder", architecture=arch, latent_channels=4, downscale="8", width=8,
                  image_size=16, seed=3)
    assert weights_equal(ae, same)


def test_new_autoencoder_options_and_errors():
    (gray,) = run("AtelierNewAutoencoder", architecture="conv", latent_channels=4, downscale="2", width=8,
                  image_size=32, seed=0, blocks=0, color="grayscale")
    assert gray.config["channels"] == 1 and gray.config["blocks"] == 0 and gray.config["downscale"] == 2
    with pytest.raises(ValueError, match=refusal("AtelierNewAutoencoder", ".*width")):
        node("AtelierNewAutoencoder").create("conv", 4, "8", 10 ** 6, 64, 0)
    with pytest.raises(ValueError, match=refusal("AtelierNewAutoencoder", "unknown architecture")):
        node("AtelierNewAutoencoder").create("gan", 4, "8", 8, 64, 0)


def test_save_numbers_files_and_load_lists_them(tmp_dirs):
    ae = tiny_ae("conv")
    (p1,) = run("AtelierSaveAutoencoder", autoencoder=ae, filename_prefix="style")
    (p2,) = run("AtelierSaveAutoencoder", autoencoder=ae, filename_prefix="style")
    (p3,) = run("AtelierSaveAutoencoder", autoencoder=ae, filename_prefix="series/portraits")
    assert p1 == str(tmp_dirs.models / "style_00001.safetensors")
    assert p2 == str(tmp_dirs.models / "style_00002.safetensors")
    assert p3 == str(tmp_dirs.models / "series" / "portraits_00001.safetensors")
    assert all(os.path.isfile(p) for p in (p1, p2, p3))
    out = node("AtelierSaveAutoencoder").save(ae, "style")
    assert out["ui"]["text"] == [out["result"][0]] and out["result"][0].endswith("style_00003.safetensors")
    names = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].INPUT_TYPES()["required"]["ae_name"][0]
    assert names == ["series/portraits_00001.safetensors", "style_00001.safetensors", "style_00002.safetensors",
                     "style_00003.safetensors"]
    loaded, info = run("AtelierLoadAutoencoder", ae_name="series/portraits_00001.safetensors")
    assert weights_equal(loaded, ae) and loaded.model_id == ae.model_id
    assert "conv autoencoder" in info and "Autoencoder Atelier" in info


def test_save_counter_continues_after_gaps_and_foreign_files(tmp_dirs):
    (tmp_dirs.models / "style_00007.safetensors").write_bytes(b"x")
    (tmp_dirs.models / "style_final.safetensors").write_bytes(b"x")
    (tmp_dirs.models / "stylish_00099.safetensors").write_bytes(b"x")
    (p,) = run("AtelierSaveAutoencoder", autoencoder=tiny_ae("conv"), filename_prefix="style")
    assert p.endswith("style_00008.safetensors")


@pytest.mark.parametrize("prefix", ["..", "../escape", "a/../../b", "/abs/path", "\\\\server\\share", "C:\\x",
                                    "bad<name", 'quote"', "pipe|x", "star*", "what?", "tab\tx", "", "a//b",
                                    "trailing/", "./x", "x" * 201])
def test_save_refuses_unsafe_prefixes(tmp_dirs, prefix):
    with pytest.raises(ValueError, match="filename_prefix"):
        node("AtelierSaveAutoencoder").save(tiny_ae("conv"), prefix)
    assert list(tmp_dirs.models.iterdir()) == [] and not any(tmp_dirs.models.parent.glob("*.safetensors"))


@pytest.mark.parametrize("name", ["../x.safetensors", "a/../../x.safetensors", "/etc/x.safetensors",
                                  "\\x.safetensors", "x.ckpt", "x.pt", "", None, "..\\x.safetensors",
                                  "C:x.safetensors", "c:sub/x.safetensors", "x\0.safetensors"])
def test_load_refuses_unsafe_names(tmp_dirs, name):
    outside = tmp_dirs.models.parent / "x.safetensors"
    storage.save_autoencoder(tiny_ae("conv"), outside)
    with pytest.raises(ValueError, match="not a model file name"):
        node("AtelierLoadAutoencoder").load(name)


def test_load_missing_and_foreign_files(tmp_dirs):
    with pytest.raises(ValueError, match="was not found"):
        node("AtelierLoadAutoencoder").load("nothing.safetensors")
    save_file({"decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(tmp_dirs.models / "sd_vae.safetensors"))
    with pytest.raises(ValueError) as e:
        node("AtelierLoadAutoencoder").load("sd_vae.safetensors")
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierLoadAutoencoder") + "sd_vae.safetensors: not an Autoencoder Atelier "
                          "model")


def test_load_is_changed_tracks_the_file(tmp_dirs):
    cls = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"]
    path = tmp_dirs.models / "m.safetensors"
    storage.save_autoencoder(tiny_ae("conv"), path)
    first = cls.IS_CHANGED("m.safetensors")
    os.utime(path, ns=(1, 1))
    assert cls.IS_CHANGED("m.safetensors") != first
    assert cls.IS_CHANGED("../m.safetensors") == "../m.safetensors"


def test_empty_model_list_has_a_placeholder(tmp_dirs):
    options = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].INPUT_TYPES()["required"]["ae_name"][0]
    assert len(options) == 1 and "no models" in options[0]


def test_hidden_and_temporary_files_are_not_listed(tmp_dirs):
    (tmp_dirs.models / ".m.safetensors.123.tmp").write_bytes(b"x")
    (tmp_dirs.models / ".hidden.safetensors").write_bytes(b"x")
    (tmp_dirs.models / "notes.txt").write_bytes(b"x")
    assert bridge.list_models() == []


def test_tmp_dirs_fixture_points_the_bridge_at_tmp(tmp_dirs):
    assert bridge.model_dirs() == [str(tmp_dirs.models)]
    assert bridge.output_dir() == str(tmp_dirs.output) and bridge.input_dir() == str(tmp_dirs.input)


def test_bridge_falls_back_without_comfyui(monkeypatch, tmp_path):
    assert bridge.IN_COMFYUI is False
    with bridge.folders():
        bridge.reset()
        monkeypatch.setenv("ATELIER_MODELS_DIR", str(tmp_path / "env_models"))
        monkeypatch.delenv("ATELIER_OUTPUT_DIR", raising=False)
        monkeypatch.chdir(tmp_path)
        assert bridge.model_dirs() == [str(tmp_path / "env_models")]
        assert bridge.output_dir() == str(tmp_path / "output")
    bar = bridge.progress_bar(10)
    seen = []
    monkeypatch.setattr(bridge.HeadlessProgressBar, "hook", lambda c, t, p: seen.append((c, t)))
    bar.update_absolute(3)
    bar.update(2)
    bar.update_absolute(50)
    assert seen == [(3, 10), (5, 10), (10, 10)]
    bridge.check_interrupted()  # a no-op without ComfyUI
    assert bridge.torch_device().type in ("cpu", "cuda")


# -- Encode / Decode ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["conv", "conv-vae"])
def test_encode_decode_shapes_dtypes_ranges(arch):
    ae = tiny_ae(arch)
    imgs = procedural(3, 32)
    (latent,) = run("AtelierEncode", autoencoder=ae, images=imgs)
    z = latent["samples"]
    assert z.shape == (3, 8, 8, 8) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert latent["atelier_model"] == ae.model_id and "atelier_size" not in latent
    (out,) = run("AtelierDecode", autoencoder=ae, latent=latent)
    assert out.shape == (3, 32, 32, 3) and out.dtype == torch.float32 and out.is_contiguous()
    assert 0 <= out.min() and out.max() <= 1


def test_encode_decode_dense_and_grayscale():
    dense = tiny_ae("dense", image_size=16, latent_channels=6)
    (latent,) = run("AtelierEncode", autoencoder=dense, images=procedural(2, 16))
    assert latent["samples"].shape == (2, 6, 1, 1)
    (out,) = run("AtelierDecode", autoencoder=dense, latent=latent)
    assert out.shape == (2, 16, 16, 3)
    gray = tiny_ae("conv", channels=1)
    (latent,) = run("AtelierEncode", autoencoder=gray, images=procedural(2, 32))
    (out,) = run("AtelierDecode", autoencoder=gray, latent=latent)
    assert out.shape == (2, 32, 32, 3) and torch.equal(out[..., 0], out[..., 2])


def test_encode_accepts_gray_rgba_and_more_than_a_chunk():
    ae = tiny_ae("conv")
    rgb = procedural(10, 32)  # more than codec.CHUNK images
    rgba = torch.cat([rgb, torch.ones(10, 32, 32, 1)], dim=-1)
    (a,) = run("AtelierEncode", autoencoder=ae, images=rgb)
    (b,) = run("AtelierEncode", autoencoder=ae, images=rgba)
    assert a["samples"].shape[0] == 10 and torch.equal(a["samples"], b["samples"])
    (g,) = run("AtelierEncode", autoencoder=ae, images=rgb[..., :1])
    assert g["samples"].shape == (10, 8, 8, 8)
    with torch.no_grad():
        single = ae.model.encode(rgb[9:].movedim(-1, 1))
    assert torch.allclose(a["samples"][9:], single, atol=1e-6)


def test_encode_cleans_non_finite_pixels():
    ae = tiny_ae("conv")
    imgs = procedural(1, 32)
    imgs[0, 0, 0] = float("nan")
    imgs[0, 0, 1] = float("inf")
    (latent,) = run("AtelierEncode", autoencoder=ae, images=imgs)
    assert torch.isfinite(latent["samples"]).all()


def test_encode_fit_modes_on_a_60x50_image():
    ae = tiny_ae("conv", downscale=8)
    img = procedural(1, 64)[:, :50, :60]  # height 50, width 60
    with pytest.raises(ValueError) as e:
        run("AtelierEncode", autoencoder=ae, images=img, fit="error")
    assert "divisible by 8" in str(e.value) and "60x50" in str(e.value)

    (padded,) = run("AtelierEncode", autoencoder=ae, images=img, fit="pad")
    assert padded["samples"].shape == (1, 8, 7, 8) and padded["atelier_size"] == [50, 60]
    (out,) = run("AtelierDecode", autoencoder=ae, latent=padded)
    assert out.shape == (1, 50, 60, 3)
    # the padding (3 rows top, 2 columns left) is what is cut off again
    full_latent = {"samples": padded["samples"]}
    (full,) = run("AtelierDecode", autoencoder=ae, latent=full_latent)
    assert full.shape == (1, 56, 64, 3) and torch.equal(out, full[:, 3:53, 2:62])

    (cropped,) = run("AtelierEncode", autoencoder=ae, images=img, fit="crop")
    assert cropped["samples"].shape == (1, 8, 6, 7) and "atelier_size" not in cropped
    (out,) = run("AtelierDecode", autoencoder=ae, latent=cropped)
    assert out.shape == (1, 48, 56, 3)

    (resized,) = run("AtelierEncode", autoencoder=ae, images=img, fit="resize")
    (out,) = run("AtelierDecode", autoencoder=ae, latent=resized)
    assert out.shape == (1, 48, 64, 3)


def test_pad_crop_is_skipped_when_another_node_resized_the_latent():
    ae = tiny_ae("conv", downscale=8)
    img = procedural(1, 64)[:, :50, :60]
    (padded,) = run("AtelierEncode", autoencoder=ae, images=img)
    upscaled = dict(padded, samples=torch.nn.functional.interpolate(padded["samples"], scale_factor=2))
    (out,) = run("AtelierDecode", autoencoder=ae, latent=upscaled)
    assert out.shape == (1, 112, 128, 3)


def test_tiny_images_are_padded_by_replication():
    ae = tiny_ae("conv", downscale=16)
    (latent,) = run("AtelierEncode", autoencoder=ae, images=procedural(1, 8)[:, :5, :7])
    assert latent["samples"].shape == (1, 8, 1, 1)
    (out,) = run("AtelierDecode", autoencoder=ae, latent=latent)
    assert out.shape == (1, 5, 7, 3)
    with pytest.raises(ValueError, match="smaller than this model's downscale"):
        run("AtelierEncode", autoencoder=ae, images=procedural(1, 8), fit="crop")


def test_dense_encode_needs_its_size_unless_resizing():
    ae = tiny_ae("dense", image_size=16)
    with pytest.raises(ValueError, match="takes 16x16 images but got 32x32"):
        run("AtelierEncode", autoencoder=ae, images=procedural(1, 32))
    (latent,) = run("AtelierEncode", autoencoder=ae, images=procedural(1, 32), fit="resize")
    assert latent["samples"].shape == (1, 8, 1, 1)


@pytest.mark.parametrize("images,match", [
    (torch.zeros(0, 32, 32, 3), "non-empty IMAGE"),
    (torch.zeros(32, 32, 3), "non-empty IMAGE"),
    (torch.zeros(1, 32, 32, 2), "2 channels"),
])
def test_encode_refuses_bad_images(images, match):
    with pytest.raises(ValueError, match=refusal("AtelierEncode", ".*" + match)):
        run("AtelierEncode", autoencoder=tiny_ae("conv"), images=images)
    with pytest.raises(ValueError, match="unknown fit"):
        run("AtelierEncode", autoencoder=tiny_ae("conv"), images=procedural(1, 32), fit="stretch")


def test_decode_refuses_a_stable_diffusion_latent():
    ae = tiny_ae("conv")  # 8 latent channels
    with pytest.raises(ValueError) as e:
        run("AtelierDecode", autoencoder=ae, latent={"samples": torch.zeros(1, 4, 8, 8)})
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierDecode") + "this latent has 4 channels") and "Stable Diffusion" in msg
    assert "came from another model" in msg
    assert "4 channels" in msg and "expects 8" in msg


def test_decode_refuses_other_atelier_models_latents_without_the_sd_hint():
    a, b = tiny_ae("conv", latent_channels=4), tiny_ae("conv")
    (latent,) = run("AtelierEncode", autoencoder=a, images=procedural(1, 32))
    with pytest.raises(ValueError) as e:
        run("AtelierDecode", autoencoder=b, latent=latent)
    assert "came from another model" in str(e.value) and "Stable Diffusion" not in str(e.value)


def test_decode_warns_but_decodes_a_compatible_latent_of_another_model(caplog):
    a, b = tiny_ae("conv", seed=1), tiny_ae("conv", seed=2)
    (latent,) = run("AtelierEncode", autoencoder=a, images=procedural(1, 32))
    with caplog.at_level("WARNING", logger="autoencoder_atelier"):
        (out,) = run("AtelierDecode", autoencoder=b, latent=latent)
    assert out.shape == (1, 32, 32, 3) and "different autoencoder" in caplog.text


def test_decode_refuses_a_resized_dense_latent():
    ae = tiny_ae("dense", latent_channels=16)
    with pytest.raises(ValueError, match="dense model's latent is \\[batch, 16, 1, 1\\]"):
        run("AtelierDecode", autoencoder=ae, latent={"samples": torch.zeros(2, 16, 2, 2)})


@pytest.mark.parametrize("latent,match", [
    ({"samples": torch.zeros(8, 4, 4)}, "expected \\[batch, channels, height, width\\]"),
    ({"samples": torch.full((1, 8, 4, 4), float("nan"))}, "NaN"),
    ({"latent": torch.zeros(1, 8, 4, 4)}, "expected a LATENT"),
    ("not a latent", "expected a LATENT"),
])
def test_decode_refuses_malformed_latents(latent, match):
    with pytest.raises(ValueError, match=match):
        run("AtelierDecode", autoencoder=tiny_ae("conv"), latent=latent)


def test_decode_accepts_half_precision_latents_and_big_batches():
    ae = tiny_ae("conv")
    z = torch.randn(11, 8, 4, 4)
    (a,) = run("AtelierDecode", autoencoder=ae, latent={"samples": z})
    (b,) = run("AtelierDecode", autoencoder=ae, latent={"samples": z.half()})
    assert a.shape == b.shape == (11, 16, 16, 3) and b.dtype == torch.float32


# -- Latent Mix --------------------------------------------------------------------------

def latents(b=2, c=8, h=4, w=4, seed=0, **extra):
    g = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(b, c, h, w, generator=g), **extra}


def mix(a, b, factor, mode, c=None):
    kwargs = {"latent_c": c} if c is not None else {}
    (out,) = run("AtelierLatentMix", latent_a=a, latent_b=b, factor=factor, mode=mode, **kwargs)
    return out


def test_lerp_endpoints_are_exact():
    a, b = latents(seed=1), latents(seed=2)
    assert torch.equal(mix(a, b, 0.0, "lerp")["samples"], a["samples"])
    assert torch.equal(mix(a, b, 1.0, "lerp")["samples"], b["samples"])
    mid = mix(a, b, 0.5, "lerp")["samples"]
    assert torch.allclose(mid, (a["samples"] + b["samples"]) / 2, atol=1e-6)
    extra = mix(a, b, 2.0, "lerp")["samples"]
    assert torch.allclose(extra, 2 * b["samples"] - a["samples"], atol=1e-5)


def test_slerp_endpoints():
    a, b = latents(seed=1), latents(seed=2)
    assert torch.allclose(mix(a, b, 0.0, "slerp")["samples"], a["samples"], atol=1e-6)
    assert torch.allclose(mix(a, b, 1.0, "slerp")["samples"], b["samples"], atol=1e-6)
    mid = mix(a, b, 0.5, "slerp")["samples"]
    lerp_mid = mix(a, b, 0.5, "lerp")["samples"]
    assert mid.flatten(1).norm(dim=1).min() > lerp_mid.flatten(1).norm(dim=1).max() * 1.1  # no shrinking


def test_add_subtract_and_difference_add():
    a, b, c = latents(seed=1), latents(seed=2), latents(seed=3)
    A, B, C = a["samples"], b["samples"], c["samples"]
    assert torch.allclose(mix(a, b, 0.5, "add")["samples"], A + 0.5 * B)
    assert torch.allclose(mix(a, b, 0.5, "subtract")["samples"], A - 0.5 * B)
    assert torch.allclose(mix(a, b, 0.7, "difference-add", c)["samples"], A + 0.7 * (B - C), atol=1e-6)
    no_c = mix(a, b, 1.0, "difference-add")["samples"]
    assert torch.allclose(no_c, A + B - B.mean(dim=(-2, -1), keepdim=True), atol=1e-6)
    # without C, A's per-channel tone is kept
    assert torch.allclose(no_c.mean(dim=(-2, -1)), A.mean(dim=(-2, -1)), atol=1e-5)


def test_batch_of_one_is_broadcast_both_ways():
    a, b1 = latents(b=3, seed=1), latents(b=1, seed=2)
    out = mix(a, b1, 0.5, "lerp")["samples"]
    assert out.shape == (3, 8, 4, 4)
    for i in range(3):
        assert torch.allclose(out[i], (a["samples"][i] + b1["samples"][0]) / 2, atol=1e-6)
    out = mix(b1, a, 1.0, "lerp")["samples"]
    assert out.shape == (3, 8, 4, 4) and torch.equal(out, a["samples"])
    with pytest.raises(ValueError, match="cannot be paired"):
        mix(latents(b=2), latents(b=3), 0.5, "lerp")


def test_b_is_resized_to_a():
    a, b = latents(h=4, w=6, seed=1), latents(h=8, w=12, seed=2)
    out = mix(a, b, 1.0, "lerp")["samples"]
    assert out.shape == (2, 8, 4, 6)
    expected = torch.nn.functional.interpolate(b["samples"], size=(4, 6), mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected, atol=1e-6)
    c = latents(h=2, w=3, seed=3)
    assert mix(a, b, 0.5, "difference-add", c)["samples"].shape == (2, 8, 4, 6)


def test_different_channel_counts_are_refused():
    with pytest.raises(ValueError, match=refusal("AtelierLatentMix", ".*different channel counts")):
        mix(latents(c=8), latents(c=4), 0.5, "lerp")
    with pytest.raises(ValueError, match="different channel counts"):
        mix(latents(c=8), latents(c=8), 0.5, "difference-add", latents(c=4))


def test_unknown_mode_and_missing_samples_are_value_errors():
    with pytest.raises(ValueError, match="unknown mix mode"):
        mix(latents(), latents(), 0.5, "multiply")
    with pytest.raises(ValueError, match=refusal("AtelierLatentMix")):
        mix({"noise": 1}, latents(), 0.5, "lerp")


def test_mix_keeps_latent_a_extra_keys():
    a = latents(seed=1, atelier_model="abc123", atelier_size=[30, 30], batch_index=[0, 1])
    b = latents(seed=2, atelier_model="other", noise_mask=torch.ones(1))
    out = mix(a, b, 0.5, "slerp")
    assert set(out) == {"samples", "atelier_model", "atelier_size", "batch_index"}
    assert out["atelier_model"] == "abc123" and out["atelier_size"] == [30, 30]
    assert out is not a and out["samples"] is not a["samples"]


def test_a_new_batch_size_drops_comfyui_keys_that_no_longer_line_up():
    """batch_index (one noise index per latent) and a per-latent noise_mask describe the old batch: kept, a walk's
    16 frames would carry 2 indices and ComfyUI's sampler would fail on them. One mask for all still fits."""
    keys = latents(b=2, batch_index=[3, 4], noise_mask=torch.ones(2, 1, 4, 4), atelier_model="abc123")
    (frames,) = run("AtelierLatentWalk", keyframes=keys, frames=16, method="slerp", easing="linear", loop=False)
    assert frames["samples"].shape[0] == 16 and set(frames) == {"samples", "atelier_model"}
    one = latents(b=1, batch_index=[7], noise_mask=torch.ones(1, 1, 4, 4))
    out = mix(one, latents(b=3, seed=1), 0.5, "lerp")
    assert out["samples"].shape[0] == 3 and set(out) == {"samples", "noise_mask"}
    assert out["noise_mask"] is one["noise_mask"]


def test_mixed_latents_decode():
    ae = tiny_ae("conv")
    (la,) = run("AtelierEncode", autoencoder=ae, images=procedural(2, 32, seed=1))
    (lb,) = run("AtelierEncode", autoencoder=ae, images=procedural(1, 32, seed=2))
    for mode in ("lerp", "slerp", "add", "subtract", "difference-add"):
        (out,) = run("AtelierDecode", autoencoder=ae, latent=mix(la, lb, 0.5, mode))
        assert out.shape == (2, 32, 32, 3) and torch.isfinite(out).all()


# -- Train node ----------------------------------------------------------------------------

def test_train_node_returns_a_new_model_and_pictures():
    ae = tiny_ae("conv")
    trained, curve, grid = run("AtelierTrainAutoencoder", autoencoder=ae, images=procedural(4, 32), steps=3,
                               batch_size=2, learning_rate=0.005, seed=0, loss="mse")
    assert trained is not ae and trained.state.step == 3 and not weights_equal(trained, ae)
    assert curve.shape == (1, 360, 640, 3) and curve.dtype == torch.float32
    # 4 originals over 4 reconstructions, 32 px each with 2 px padding
    assert grid.shape == (1, 2 * 32 + 3 * 2, 4 * 32 + 5 * 2, 3)
    assert 0 <= grid.min() and grid.max() <= 1


def test_train_node_zero_steps_and_bad_inputs():
    ae = tiny_ae("conv")
    trained, curve, grid = run("AtelierTrainAutoencoder", autoencoder=ae, images=procedural(2, 32), steps=0,
                               batch_size=2, learning_rate=0.005, seed=0, loss="mse")
    assert weights_equal(trained, ae) and curve.shape[0] == 1
    with pytest.raises(ValueError, match=refusal("AtelierTrainAutoencoder", "unknown loss")):
        run("AtelierTrainAutoencoder", autoencoder=ae, images=procedural(2, 32), steps=1, batch_size=2,
            learning_rate=0.005, seed=0, loss="perceptual")
    with pytest.raises(ValueError, match=refusal("AtelierTrainAutoencoder", "the image batch is empty")):
        run("AtelierTrainAutoencoder", autoencoder=ae, images=torch.zeros(0, 32, 32, 3), steps=1, batch_size=2,
            learning_rate=0.005, seed=0, loss="mse")


def test_full_graph_new_train_save_load_encode_mix_decode(tmp_dirs):
    (ae,) = run("AtelierNewAutoencoder", architecture="conv", latent_channels=8, downscale="4", width=8,
                image_size=32, seed=0)
    imgs = procedural(4, 32)
    trained, _, _ = run("AtelierTrainAutoencoder", autoencoder=ae, images=imgs, steps=5, batch_size=4,
                        learning_rate=0.005, seed=0, loss="mse")
    (path,) = run("AtelierSaveAutoencoder", autoencoder=trained, filename_prefix="graph")
    loaded, info = run("AtelierLoadAutoencoder", ae_name=os.path.basename(path))
    assert "trained 5 steps on 4 images" in info
    (la,) = run("AtelierEncode", autoencoder=loaded, images=imgs[:2])
    (lb,) = run("AtelierEncode", autoencoder=trained, images=imgs[2:])
    assert la["atelier_model"] == lb["atelier_model"] == ae.model_id
    (out,) = run("AtelierDecode", autoencoder=loaded,
                 latent=mix(la, lb, 0.25, "slerp"))
    assert out.shape == (2, 32, 32, 3)
    (same,) = run("AtelierDecode", autoencoder=trained, latent=mix(la, lb, 0.25, "slerp"))
    assert torch.equal(out, same)
