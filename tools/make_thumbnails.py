#!/usr/bin/env python3
"""Writes workflows/<name>.jpg, the card ComfyUI's template browser shows for each workflow, from a real run of
that workflow with the headless runner: generated artworks in a temporary input folder (a different one for
each Load Image), short settings, and the save with the most frames (a batch, an animation or an image grid;
equal ones together: each strength of the variations), laid out as a square grid that fills the card.
Workflows that load a model run after the one that trains it.
    python tools/make_thumbnails.py               # all, training 200 steps (4 CPU minutes)
    python tools/make_thumbnails.py --steps 8     # a quick look (blocky pictures)
"""
import argparse
import glob
import math
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

atelier.load_pack()
from autoencoder_atelier.headless import runner, workflow  # noqa: E402
from autoencoder_atelier.models import procedural  # noqa: E402
from autoencoder_atelier.nodes import bridge  # noqa: E402

SIDE = 512
# Short runs: small sizes for speed; the steps (--steps) for recognisable pictures.
CAPS = {"steps": 200, "size": 64, "crop_size": 64, "batch_size": 16, "count": 300, "width": 128, "height": 128,
        "frames": 12, "image_size": 64}
WORKS = (4, 11, 5)   # procedural seeds of the Load Image pictures: bright palettes, one per picture
GAP, BACKGROUND = 4, (24, 24, 24)


def inputs_for(wf, folder):
    """The folders and pictures a workflow reads, generated; each Load Image gets its own work (a mix or a
    collage of a picture with itself shows nothing), with holes where it feeds Restore."""
    restorers = {n["id"] for n in wf["nodes"] if n["type"] == "AtelierRestore"}
    damaged = {link[1] for link in wf["links"] if link[3] in restorers}
    for i, n in enumerate(n for n in wf["nodes"] if n["type"] == "LoadImage"):
        n["widgets_values"][0] = name = f"work_{i}.png"
        picture = procedural.make_image(WORKS[i % len(WORKS)], 128)
        (procedural.with_holes(picture, i) if n["id"] in damaged else picture).save(os.path.join(folder, name))
    for n in wf["nodes"]:
        value = (n.get("widgets_values") or [None])[0]
        if n["type"] in ("AtelierLoadImageFolder", "AtelierLoadDataset") and value:
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


def cells(picture):
    """The pictures of an image grid (models/plots.image_grid: equal cells between white lines, the border
    included); anything else, a chart for one, is one picture."""
    a = np.asarray(picture)
    cuts = []
    for white in (a == 255).all(axis=(1, 2)), (a == 255).all(axis=(0, 2)):
        runs = np.flatnonzero(np.diff(np.r_[True, white, True].astype(np.int8)))   # starts and ends of cells
        cuts.append(list(zip(runs[::2], runs[1::2])))
    sizes = {(y1 - y0, x1 - x0) for y0, y1 in cuts[0] for x0, x1 in cuts[1]}
    if len(sizes) != 1 or not (a[0] == 255).all() or not (a[:, 0] == 255).all():
        return [picture]
    return [picture.crop((x0, y0, x1, y1)) for y0, y1 in cuts[0] for x0, x1 in cuts[1]]


def frames(path):
    """A saved picture's frames: an animation's, a grid's cells, or the picture."""
    with Image.open(path) as img:
        return [f for frame in ImageSequence.Iterator(img) for f in cells(frame.convert("RGB"))]


def card(pictures):
    """The card: the largest square grid (up to 4 x 4) of pictures spread evenly over the sequence (a walk keeps
    its ends), each cropped to its centre square, filling SIDE x SIDE."""
    n = min(4, math.isqrt(len(pictures)))
    picks = [pictures[round(i * (len(pictures) - 1) / max(1, n * n - 1))] for i in range(n * n)]
    cell = (SIDE - (n - 1) * GAP) // n
    out = Image.new("RGB", (SIDE, SIDE), BACKGROUND)
    for i, picture in enumerate(picks):
        row, col = divmod(i, n)
        out.paste(ImageOps.fit(picture, (cell, cell), Image.LANCZOS), (col * (cell + GAP), row * (cell + GAP)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=CAPS["steps"], help="training steps of each run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves the other cores free)")
    args = parser.parse_args()
    CAPS["steps"] = args.steps
    torch.set_num_threads(args.threads)
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
            saves = [[f for im in ui[node_id].get("images", []) if im.get("type", "output") == "output"
                      for f in frames(os.path.join(dirs["output"], im["subfolder"], im["filename"]))]
                     for node_id in sorted(ui, key=int)]
            most = max(map(len, saves), default=0)
            best = [frame for save in saves if len(save) == most for frame in save]   # equals together
            if not best:
                print(f"{name}: saved no picture; no thumbnail")
                continue
            out = os.path.join(ROOT, "workflows", f"{name}.jpg")
            card(best).save(out, quality=85, optimize=True)
            print(f"{name}: {os.path.relpath(out, ROOT)} from {len(best)} frames")


if __name__ == "__main__":
    main()
