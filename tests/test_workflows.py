"""The shipped workflows and the headless runner: files current, every workflow runs, errors are clear."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from autoencoder_atelier.headless import cli, runner, workflow
from autoencoder_atelier.models import procedural, storage
from helpers import ROOT

WORKFLOWS = os.path.join(ROOT, "workflows")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_workflows  # noqa: E402


def names():
    return sorted(f for f in os.listdir(WORKFLOWS) if f.endswith(".json"))


def test_the_promised_workflows_exist():
    assert {f"Atelier - {title}.json" for title in (
        "Train on a folder", "Mix two works", "Dense model on digits", "Explore latents", "Walk animation",
        "Collage of two works", "Restore a damaged work", "Learn from one painting", "New works in your style",
        "Variations of a work")} <= set(names())


def test_every_workflow_the_code_and_docs_name_exists():
    """A renamed workflow leaves no stale path behind in code, tests, benches, tools or the README."""
    import re
    named = re.compile(r'workflows(?:/|", ")([^"*<\n]+?\.json)')
    stale = []
    for folder, _dirs, files in os.walk(ROOT):
        if any(part.startswith(".") for part in os.path.relpath(folder, ROOT).split(os.sep) if part != "."):
            continue   # .venv, .git, caches
        for f in files:
            if f.endswith((".py", ".md", ".sh", ".js")) and f != "CHANGELOG.md":
                with open(os.path.join(folder, f), encoding="utf-8") as fh:
                    stale += [(f, n) for n in named.findall(fh.read()) if n not in names()]
    assert stale == []


def test_file_names_read_as_template_titles():
    """ComfyUI's template browser shows a pack's workflow by its file name as it is (no underscores replaced, no
    prefix dropped), among the core templates: 'Atelier - <what it does>'."""
    for name in names():
        title = name[:-5]
        assert title.startswith("Atelier - ") and "_" not in title and len(title) <= 40, title
        assert os.path.exists(os.path.join(WORKFLOWS, title + ".jpg")), f"{title} has no thumbnail"


@pytest.mark.parametrize("name", names())
def test_no_node_covers_another_title_bar_included(name):
    """The frontend draws each node's title (LiteGraph's NODE_TITLE_HEIGHT, 30 px) above its pos."""
    build_workflows.check_layout(workflow.load(os.path.join(WORKFLOWS, name))["nodes"])


def test_workflow_files_match_their_generator():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_workflows.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", names())
def test_workflows_are_ui_format_with_known_nodes_and_notes(name, monkeypatch):
    from autoencoder_atelier.nodes import bridge
    # The mix workflow names the model the train workflow saves first.
    monkeypatch.setattr(bridge, "list_models", lambda: ["atelier/my_style_00001.safetensors",
                                                        "atelier/my_style_prior_00001.safetensors"])
    wf = workflow.load(os.path.join(WORKFLOWS, name))
    assert workflow.is_ui_format(wf) and wf["version"] == 0.4
    types = {n["type"] for n in wf["nodes"]}
    assert "Note" in types
    assert types - {"Note"} <= set(runner.NODES)
    ids = {n["id"] for n in wf["nodes"]}
    for link_id, src, _, dst, _, _ in wf["links"]:
        assert src in ids and dst in ids
    prompt = workflow.to_api(wf, runner.input_types_of)
    runner.plan(prompt)  # validates every widget value against the node specs


def run_workflow(name, overrides):
    return runner.run(cli.load_prompt(os.path.join(WORKFLOWS, name), overrides), progress=False)


def output_files(ui):
    return [im["path"] for out in ui.values() for im in out.get("images", [])]


def test_train_then_mix_then_mnist_headless(tmp_dirs):
    art = tmp_dirs.input / "art"
    procedural.write_folder(str(art), count=8, size=48)
    ui = run_workflow("Atelier - Train on a folder.json",
                      [f"folder={json.dumps(str(art))}", "steps=12", "size=48", "crop_size=32", "frames=5"])
    files = output_files(ui)
    assert len(files) == 3 and all(os.path.getsize(f) for f in files)
    walk = [f for f in files if "walk_strip" in f][0]
    assert Image.open(walk).size == (5 * 48 + 6 * 2, 48 + 4)   # 5 frames in one row, 2 px padding
    model = tmp_dirs.models / "atelier" / "my_style_00001.safetensors"
    ae = storage.load_autoencoder(model)
    assert ae.state.step == 12 and ae.state.summary["data_size"] == 8

    procedural.make_image(1, 40).save(tmp_dirs.input / "a.png")
    procedural.make_image(2, 64).save(tmp_dirs.input / "b.png")
    ui = run_workflow("Atelier - Mix two works.json",
                      ["Image A.image=a.png", "Image B.image=b.png"])
    (mix,) = output_files(ui)
    assert Image.open(mix).size == (40, 40)

    ui = run_workflow("Atelier - Explore latents.json",
                      [f"folder={json.dumps(str(art))}", "size=48", "Image A (content).image=a.png",
                       "Image B (style).image=b.png", "width=48", "height=48", "4.max_directions=4"])
    files = {os.path.basename(f).rsplit("_", 2)[0]: f for f in output_files(ui)}
    assert set(files) == {"direction_chart", "direction_edit", "samples", "style_mix", "latent_view"}
    assert Image.open(files["style_mix"]).size == (40, 40)
    assert Image.open(files["direction_edit"]).size == (8 * 48 + 9 * 2, 48 + 4)

    digits = tmp_dirs.input / "digits"
    procedural.write_digits(str(digits), count=64)
    ui = run_workflow("Atelier - Dense model on digits.json",
                      [f"folder={json.dumps(str(digits))}", "steps=5", "batch_size=16"])
    assert len(output_files(ui)) == 2
    dense = storage.load_autoencoder(tmp_dirs.models / "atelier" / "mnist_dense_00001.safetensors")
    assert dense.config["architecture"] == "dense" and dense.config["channels"] == 1


def test_restore_then_collage_walk_animation_and_few_shot_headless(tmp_dirs):
    art = tmp_dirs.input / "art"
    procedural.write_folder(str(art), count=6, size=48)
    held_out = procedural.make_image(999, 48)
    held_out.save(tmp_dirs.input / "clean.png")
    procedural.with_holes(held_out, 1).save(tmp_dirs.input / "damaged.png")
    ui = run_workflow("Atelier - Restore a damaged work.json", [f"folder={json.dumps(str(art))}", "size=48",
                                                               "steps=10", "crop_size=32",
                                                               "Damaged artwork.image=damaged.png"])
    restored = [f for f in output_files(ui) if "restored" in f]
    assert len(restored) == 1
    damaged = Image.open(tmp_dirs.input / "damaged.png")
    kept = np.asarray(damaged)[..., 3] == 255
    assert 0 < (~kept).sum() and np.array_equal(np.asarray(Image.open(restored[0]))[kept],
                                                np.asarray(damaged.convert("RGB"))[kept])
    model = "atelier/restorer_00001.safetensors"
    assert storage.load_autoencoder(tmp_dirs.models / model).state.summary["corruption"] == "holes"

    procedural.make_image(3, 48).save(tmp_dirs.input / "b.png")
    ui = run_workflow("Atelier - Collage of two works.json", [f"ae_name={model}", "Image A.image=clean.png",
                                                             "Image B.image=b.png", "split=circle"])
    (collage,) = output_files(ui)
    assert Image.open(collage).size == (48, 48)

    ui = run_workflow("Atelier - Walk animation.json", [f"ae_name={model}", f"folder={json.dumps(str(art))}",
                                                        "size=48", "frames=9"])
    (webp,) = output_files(ui)
    anim = Image.open(webp)
    assert webp.endswith(".webp") and anim.n_frames == 9 and anim.size == (48, 48)

    paintings = tmp_dirs.input / "paintings"
    paintings.mkdir()
    sizes = {"wide.png": (176, 120), "tall.png": (104, 152)}   # neither square nor a multiple of the downscale
    for i, (name, (w, h)) in enumerate(sizes.items()):
        procedural.make_image(20 + i, 176).resize((w, h)).save(paintings / name)
        procedural.make_image(20 + i, 176).resize((w, h)).save(tmp_dirs.input / name)
    for name, size in sizes.items():   # each painting re-made whole, at its own size: not a square crop
        ui = run_workflow("Atelier - Learn from one painting.json",
                          [f"folder={json.dumps(str(paintings))}", "size=64", "count=8", "steps=8", "crop_size=32",
                           f"Painting to re-make.image={name}"])
        (painting,) = [f for f in output_files(ui) if "few_shot_painting" in f]
        assert Image.open(painting).size == size
    few = storage.load_autoencoder(tmp_dirs.models / "atelier" / "few_shot_00001.safetensors")
    assert few.state.summary["data_size"] == 8 and few.state.step == 8


def test_generate_then_variations_headless(tmp_dirs):
    art = tmp_dirs.input / "art"
    procedural.write_folder(str(art), count=6, size=48)
    ui = run_workflow("Atelier - New works in your style.json",
                      [f"folder={json.dumps(str(art))}", "size=48", "steps=2", "crop_size=48", "New works.width=48",
                       "New works.height=48", "One large picture.width=192", "One large picture.height=128"])
    files = {os.path.basename(f).rsplit("_", 2)[0]: f for f in output_files(ui)}
    assert Image.open(files["new_works"]).size == (8 * 48 + 9 * 2, 2 * 48 + 3 * 2)
    assert Image.open(files["large_picture"]).size == (192, 128)
    model = "atelier/my_style_prior_00001.safetensors"
    assert storage.load_autoencoder(tmp_dirs.models / model).prior.summary["works"] == 6

    procedural.make_image(7, 48).save(tmp_dirs.input / "work.png")
    ui = run_workflow("Atelier - Variations of a work.json", [f"ae_name={model}", "A work.image=work.png"])
    rows = [Image.open(f) for f in output_files(ui)]
    assert len(rows) == 12 and all(r.size == (48, 48) for r in rows)


def test_other_core_nodes_are_refused_by_name():
    prompt = {"1": {"class_type": "KSampler", "inputs": {}, "_meta": {"title": "KSampler"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    with pytest.raises(workflow.WorkflowError, match="KSampler.*not available headless"):
        runner.run(prompt)


def test_bad_widget_values_and_missing_inputs_are_named():
    wf = workflow.load(os.path.join(WORKFLOWS, "Atelier - Train on a folder.json"))
    prompt = workflow.to_api(wf, runner.input_types_of)
    bad = cli.apply_overrides(json.loads(json.dumps(prompt)), ["mode=stretch"])
    with pytest.raises(workflow.WorkflowError, match="mode='stretch' is not one of"):
        runner.plan(bad)
    bad = cli.apply_overrides(json.loads(json.dumps(prompt)), ["steps=-5"])
    with pytest.raises(workflow.WorkflowError, match="steps=-5 is outside"):
        runner.plan(bad)
    del prompt["3"]["inputs"]["autoencoder"]
    with pytest.raises(workflow.WorkflowError, match="required input 'autoencoder'"):
        runner.plan(prompt)
    with pytest.raises(workflow.WorkflowError, match="no node has a widget input named 'stepz'"):
        cli.apply_overrides(prompt, ["stepz=3"])


def test_overrides_target_one_node_by_title_or_id():
    wf = workflow.load(os.path.join(WORKFLOWS, "Atelier - Train on a folder.json"))
    prompt = cli.apply_overrides(workflow.to_api(wf, runner.input_types_of), ["Keyframes.count=2", "1.size=32"])
    assert prompt["7"]["inputs"]["count"] == 2 and prompt["1"]["inputs"]["count"] == 0
    assert prompt["1"]["inputs"]["size"] == 32 and prompt["7"]["inputs"]["size"] == 128


def test_ui_conversion_follows_reroutes_primitives_and_bypass():
    spec = {"A": {"required": {"x": ("INT", {"default": 1, "control_after_generate": True}),
                               "name": ("STRING", {"default": ""})}},
            "B": {"required": {"a": ("THING",), "k": (["p", "q"],)}}}
    wf = {"nodes": [
        {"id": 1, "type": "A", "widgets_values": [7, "randomize", "n"], "outputs": [{"type": "THING"}]},
        {"id": 2, "type": "Reroute", "inputs": [{"name": "", "link": 1}], "outputs": [{"type": "THING"}]},
        {"id": 3, "type": "B", "mode": 4, "inputs": [{"name": "a", "type": "THING", "link": 2}],
         "outputs": [{"type": "THING"}], "widgets_values": ["p"]},
        {"id": 4, "type": "B", "inputs": [{"name": "a", "type": "THING", "link": 3},
                                          {"name": "k", "type": "COMBO", "link": 4, "widget": {"name": "k"}}],
         "widgets_values": ["p"]},
        {"id": 5, "type": "PrimitiveNode", "outputs": [{"type": "COMBO"}], "widgets_values": ["q"]},
        {"id": 6, "type": "Note", "widgets_values": ["hello"]},
    ], "links": [[1, 1, 0, 2, 0, "THING"], [2, 2, 0, 3, 0, "THING"], [3, 3, 0, 4, 0, "THING"],
                 [4, 5, 0, 4, 1, "COMBO"]]}
    prompt = workflow.to_api(wf, spec.get)
    assert set(prompt) == {"1", "4"}
    assert prompt["1"]["inputs"] == {"x": 7, "name": "n"}          # "randomize" skipped
    assert prompt["4"]["inputs"] == {"a": ["1", 0], "k": "q"}       # via reroute + bypass; primitive value


def test_unknown_node_types_in_ui_files_are_named():
    wf = {"nodes": [{"id": 9, "type": "FancyNode", "title": "Fancy"}], "links": []}
    with pytest.raises(workflow.WorkflowError, match="node 9 \\(Fancy\\): unknown node type 'FancyNode'"):
        workflow.to_api(wf, runner.input_types_of)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    code = cli.main(["--output-dir", str(tmp_path), "run", os.path.join(WORKFLOWS, "Atelier - Train on a folder.json"),
                     "--set", f"folder={json.dumps(str(tmp_path / 'nope'))}"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_ui_conversion_skips_the_control_value_the_frontend_adds_to_any_int_named_seed():
    spec = {"S": {"required": {"seed": ("INT", {"default": 0}), "steps": ("INT", {"default": 1})}}}
    wf = {"nodes": [{"id": 1, "type": "S", "widgets_values": [42, "fixed", 7]}], "links": []}
    assert workflow.to_api(wf, spec.get)["1"]["inputs"] == {"seed": 42, "steps": 7}


@pytest.mark.parametrize("prefix", ["../escape", "/abs/path", "a<b"])
def test_headless_save_image_refuses_prefixes_that_leave_the_output_folder(tmp_dirs, prefix):
    import torch
    with pytest.raises(ValueError, match="Save Image: filename_prefix .* is not allowed"):
        runner.NODES["SaveImage"]().save_images(torch.zeros(1, 4, 4, 3), prefix)
    assert list(tmp_dirs.output.iterdir()) == []


@pytest.mark.parametrize("name", names())
def test_workflows_that_load_a_model_tell_the_artist_to_pick_theirs(name):
    wf = workflow.load(os.path.join(WORKFLOWS, name))
    if any(n["type"] == "AtelierLoadAutoencoder" for n in wf["nodes"]):
        notes = " ".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note")
        assert "pick yours" in notes


def test_workflows_saved_before_the_dataset_inputs_still_convert():
    """Files saved before Train Autoencoder and Train Latent Prior had a dataset input give the same prompt."""
    wf = workflow.load(os.path.join(WORKFLOWS, "Atelier - New works in your style.json"))
    old = json.loads(json.dumps(wf))
    for n in old["nodes"]:
        n["inputs"] = [i for i in n.get("inputs", []) if i["name"] != "dataset"]
    assert old != wf and workflow.to_api(old, runner.input_types_of) == workflow.to_api(wf, runner.input_types_of)
