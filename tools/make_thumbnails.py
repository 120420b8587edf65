#!/usr/bin/env python3
"""Writes workflows/<name>.jpg, the card ComfyUI's template browser shows for each workflow, from a real run of
that workflow with the headless runner: generated artworks in a temporary input folder, short settings, and
the last picture the workflow saves. Workflows that load a model run after the one that trains it.
    python tools/make_thumbnails.py               # all, training 200 steps (a few CPU minutes)
    python tools/make_thumbnails.py --steps 8     # a quick look (blocky pictures)
"""
import argparse
import glob
import os
import sys
import tempfile

from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

atelier.load_pack()
from autoencoder_atelier.headless import runner, workflow  # noqa: E402
from autoencoder_atelier.models import procedural  # noqa: E402
from autoencoder_atelier.nodes import bridge  # noqa: E402

SIDE = 512
# Short runs: small sizes for speed; the steps (--steps) for recognisable pictures.
CAPS = {"steps": 200, "size": 64, "crop_size": 64, "batch_size": 8, "count": 300, "width": 128, "height": 128,
        "frames": 12, "image_size": 64}


def inputs_for(wf, folder):
    """The folders and pictures a workflow reads, generated."""
    for n in wf["nodes"]:
        value = (n.get("widgets_values") or [None])[0]
        if n["type"] == "LoadImage" and value and not os.path.exists(os.path.join(folder, value)):
            procedural.make_image(7, 192).save(os.path.join(folder, value))
        elif n["type"] in ("AtelierLoadImageFolder", "AtelierLoadDataset") and value:
            path = os.path.join(folder, value)
            if not os.path.isdir(path):
                (procedural.write_digits(path, count=300) if "mnist" in value
                 else procedural.write_folder(path, count=24, size=192))


def capped(prompt):
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if name in CAPS and isinstance(value, (int, float)) and not isinstance(value, bool) and value > CAPS[name]:
                node["inputs"][name] = CAPS[name]
    return prompt


def thumbnail(path, out):
    img = Image.open(path).convert("RGB")
    ImageOps.pad(img, (SIDE, SIDE), Image.LANCZOS, color=(24, 24, 24)).save(out, quality=85, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=CAPS["steps"], help="training steps of each run")
    CAPS["steps"] = parser.parse_args().steps
    names = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "workflows", "*.json")))
    loads = lambda n: any(x["type"] == "AtelierLoadAutoencoder" for x in workflow.load(  # noqa: E731
        os.path.join(ROOT, "workflows", f"{n}.json"))["nodes"])
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {k: os.path.join(tmp, k) for k in ("models", "output", "input")}
        for d in dirs.values():
            os.makedirs(d)
        bridge.configure(models_dir=dirs["models"], output_dir=dirs["output"], input_dir=dirs["input"])
        for name in sorted(names, key=lambda n: (loads(n), n)):   # models made before they are loaded
            wf = workflow.load(os.path.join(ROOT, "workflows", f"{name}.json"))
            inputs_for(wf, dirs["input"])
            prompt = capped(workflow.to_api(wf, runner.input_types_of))
            ui = runner.run(prompt, progress=False)
            pictures = [os.path.join(dirs["output"], im["subfolder"], im["filename"])
                        for node_id in sorted(ui, key=int) for im in ui[node_id].get("images", [])
                        if im.get("type", "output") == "output"]
            if not pictures:
                print(f"{name}: saved no picture; no thumbnail")
                continue
            out = os.path.join(ROOT, "workflows", f"{name}.jpg")
            thumbnail(pictures[-1], out)
            print(f"{name}: {os.path.relpath(out, ROOT)} from {os.path.basename(pictures[-1])}")


if __name__ == "__main__":
    main()
