#!/usr/bin/env python3
"""Writes the example workflows in workflows/ (ComfyUI UI format) from the declarations below.

Widget values are laid out from each node's INPUT_TYPES, so the files always match the code:
    python tools/build_workflows.py          # rewrite workflows/*.json
    python tools/build_workflows.py --check  # exit 1 if a file is out of date (used by the tests)
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

atelier.load_pack()
from autoencoder_atelier.headless.runner import NODES  # noqa: E402
from autoencoder_atelier.headless.workflow import has_control_widget, is_widget  # noqa: E402
from generated import sync  # noqa: E402  (tools/, the folder this script runs from)


def N(id, type, pos, title=None, box=(320, 180), **widgets):
    return {"id": id, "type": type, "pos": pos, "title": title, "size": box, "widgets": widgets}


def NOTE(id, pos, text, box=(420, 200)):
    return {"id": id, "type": "Note", "pos": pos, "size": box, "text": text}


# Heights ComfyUI's frontend (1.27 and 1.58 alike) gives these nodes, below their ~30 px title: a box drawn
# smaller grows on load and covers its neighbours. Train grows by its live preview, Save Autoencoder by the
# saved path, Save/Preview Image by their picture.
TITLE = 30
MIN_HEIGHT = {"AtelierTrainAutoencoder": 640, "AtelierTrainLatentPrior": 560, "AtelierSaveAutoencoder": 170,
              "AtelierNewAutoencoder": 250, "AtelierLoadImageFolder": 178, "AtelierEncode": 102, "AtelierDecode": 78,
              "AtelierSampleLatent": 202, "AtelierLoadAutoencoder": 250, "SaveImage": 250, "PreviewImage": 250,
              "LoadImage": 320}
MIN_WIDTH = {"AtelierEncode": 330, "AtelierDecode": 330}   # their display names set the title's width


def check_layout(nodes):
    """No node box (title included) may overlap another, at the sizes the frontend will give them."""
    boxes = [(n, n["pos"][0], n["pos"][1] - TITLE, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes]
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
        for b, bx0, by0, bx1, by1 in boxes[i + 1:]:
            assert not (ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1), \
                f"{a.get('title') or a['type']} ({a['id']}) overlaps {b.get('title') or b['type']} ({b['id']})"


def build(nodes, links):
    """nodes: N()/NOTE() dicts; links: (from_id, from_output_name, to_id, to_input_name)."""
    for n in nodes:
        n["size"] = (max(n["size"][0], MIN_WIDTH.get(n["type"], 0)), max(n["size"][1], MIN_HEIGHT.get(n["type"], 0)))
    check_layout(nodes)
    by_id = {n["id"]: n for n in nodes}
    out_nodes, link_rows = [], []
    slots_in, slots_out = {}, {}
    for n in nodes:
        if n["type"] == "Note":
            continue
        cls = NODES[n["type"]]
        spec = cls.INPUT_TYPES()
        n["link_inputs"] = [(k, s[0]) for sec in ("required", "optional") for k, s in spec.get(sec, {}).items()
                            if not is_widget(s)]
        names = getattr(cls, "RETURN_NAMES", None) or [t.lower() for t in cls.RETURN_TYPES]
        n["outputs"] = list(zip(names, cls.RETURN_TYPES))
        n["spec"] = spec
    for i, (src, out_name, dst, in_name) in enumerate(links, start=1):
        s, d = by_id[src], by_id[dst]
        oslot = [o for o, _ in s["outputs"]].index(out_name)
        islot = [k for k, _ in d["link_inputs"]].index(in_name)
        kind = s["outputs"][oslot][1]
        link_rows.append([i, src, oslot, dst, islot, kind])
        slots_in[(dst, in_name)] = i
        slots_out.setdefault((src, oslot), []).append(i)
    # Execution order: a node comes after everything it reads from.
    order, seen = [], set()

    def visit(nid):
        if nid in seen:
            return
        seen.add(nid)
        for (src, _, dst, _) in links:
            if dst == nid:
                visit(src)
        order.append(nid)

    for n in nodes:
        visit(n["id"])
    for n in nodes:
        base = {"id": n["id"], "type": n["type"], "pos": list(n["pos"]), "size": list(n["size"]), "flags": {},
                "order": order.index(n["id"]), "mode": 0}
        if n["type"] == "Note":
            base.update(inputs=[], outputs=[], properties={"text": ""}, widgets_values=[n["text"]],
                        color="#432", bgcolor="#653")
            out_nodes.append(base)
            continue
        values = []
        for sec in ("required", "optional"):
            for k, s in n["spec"].get(sec, {}).items():
                if not is_widget(s):
                    continue
                opts = s[1] if len(s) > 1 and isinstance(s[1], dict) else {}
                value = n["widgets"].get(k, opts.get("default", s[0][0] if isinstance(s[0], list) and s[0] else None))
                values.append(value)
                if has_control_widget(k, s):
                    values.append("fixed")
                if opts.get("image_upload"):
                    values.append("image")
        unknown = set(n["widgets"]) - {k for sec in n["spec"].values() for k in sec}
        assert not unknown, f"{n['type']}: unknown widgets {unknown}"
        base["inputs"] = [{"name": k, "type": t, "link": slots_in.get((n["id"], k))} for k, t in n["link_inputs"]]
        base["outputs"] = [{"name": o, "type": t, "links": slots_out.get((n["id"], j), []), "slot_index": j}
                           for j, (o, t) in enumerate(n["outputs"])]
        base["properties"] = {"Node name for S&R": n["type"]}
        base["widgets_values"] = values
        if n["title"]:
            base["title"] = n["title"]
        out_nodes.append(base)
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(link_rows), "nodes": out_nodes,
            "links": link_rows, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}},
            "version": 0.4}


def training_chain(title, downscale, steps, crop_size, train_box=(340, 300), **train):
    """Nodes 1-3 of the workflows that train: Load Image Folder -> New Autoencoder -> Train Autoencoder."""
    return [
        N(1, "AtelierLoadImageFolder", (20, 320), title, folder="my_artworks", size=128,
          mode="center-crop", count=0),
        N(2, "AtelierNewAutoencoder", (20, 540), architecture="conv", latent_channels=8, downscale=downscale, width=32,
          image_size=64, seed=0, box=(320, 240)),
        N(3, "AtelierTrainAutoencoder", (400, 320), steps=steps, batch_size=16, learning_rate=0.002, seed=0,
          loss="mse", crop_size=crop_size, flip=True, **train, box=train_box),
    ]


def two_images(note, combiner, decode_pos, title, prefix):
    """Load a model, encode Load Image A and B, join their latents in ``combiner`` (node 6, inputs latent_a and
    latent_b), decode and save: the shape of the mix and collage workflows."""
    x, y = decode_pos
    return build([
        note,
        N(1, "AtelierLoadAutoencoder", (20, 260), ae_name="atelier/my_style_00001.safetensors", box=(340, 100)),
        N(2, "LoadImage", (20, 560), "Image A", image="example.png", box=(320, 320)),
        N(3, "LoadImage", (360, 560), "Image B", image="example.png", box=(320, 320)),
        N(4, "AtelierEncode", (720, 260), "Encode A", box=(240, 80)),
        N(5, "AtelierEncode", (720, 400), "Encode B", box=(240, 80)),
        combiner,
        N(7, "AtelierDecode", (x, y), box=(240, 60)),
        N(8, "SaveImage", (x, y + 110), title, filename_prefix=prefix, box=(360, 360)),
    ], [
        (1, "autoencoder", 4, "autoencoder"), (1, "autoencoder", 5, "autoencoder"), (2, "image", 4, "images"),
        (3, "image", 5, "images"), (4, "latent", 6, "latent_a"), (5, "latent", 6, "latent_b"),
        (1, "autoencoder", 7, "autoencoder"), (6, "latent", 7, "latent"), (7, "images", 8, "images"),
    ])

TRAIN_NOTE = """Train an autoencoder on your artworks.

1. Put 20 or more of your images in a folder, e.g. ComfyUI/input/my_artworks, and type its name (or a full path) into both Load Image Folder nodes.
2. Queue. Training shows a progress bar and a live preview; Cancel stops it safely.
3. For sharper results raise steps (2000+) and size; crop_size trains on random patches, which is faster.

The model is saved to models/autoencoders/atelier. The walk strip travels through the first 4 images of the folder. Reconstructions show the centre crop_size square of each work, the size training saw; the walk, the centre square of each (set Keyframes' mode to resize to keep whole works, squashed)."""

# Every workflow with a Load Autoencoder says this: it names the demo's first model until you pick yours.
PICK_MODEL = ("Load Autoencoder names atelier/my_style_00001, the model the demo saves first: pick yours in it (your "
              "own training saves _00002 and on; press R to refresh the list).")

MIX_NOTE = f"""Mix two artworks in latent space.

1. {PICK_MODEL}
2. Load two images. They can differ in size: B is resized to A's latent size.
3. factor 0 = A, 1 = B; try slerp for blends that keep their strength, or add/subtract/difference-add."""

MNIST_NOTE = """The classic dense autoencoder (784-64-32-16) on 28x28 digits.

Make a digit folder first, from a terminal in this pack's folder:
  python atelier.py make-data digits ../../input/mnist_digits --count 8000
(or --from-npz path/to/mnist.npz for real MNIST digits). flip is off: mirrored digits are not digits."""


EXPLORE_NOTE = f"""Explore what your model learned (train one with 'Atelier - Train on a folder' first).
{PICK_MODEL}

Top: the main directions in which your works differ; the chart shows how much each explains. Latent Edit pushes every work along direction 0 (try other index/strength values).
Middle: Sample Latent invents new latents from the statistics of your works.
Bottom: Style Mix gives image A the colour and texture statistics of image B; Visualize Latent shows what the model sees."""


WALK_NOTE = f"""A looping animation that travels through your works (train one with 'Atelier - Train on a folder' first).

1. {PICK_MODEL} Pick your folder in Keyframes; the first 'count' images become keyframes, in file-name order, cut to their centre squares (mode resize keeps whole works, squashed).
2. frames sets the length (48 frames at 12 fps = 4 s); slerp keeps colours strong between keyframes, ease-in-out lingers on each work.
3. The WEBP plays in the browser; for a strip instead, send Decode into Image Grid."""

COLLAGE_NOTE = f"""Half a painting from one work, half from another.

1. {PICK_MODEL} Load two images (B is resized to A's latent size).
2. split: left-right, top-bottom, circle or diagonal; position moves the cut; feather softens the seam.
3. For any shape: paint a mask on image A (right-click > Open in MaskEditor) and connect Image A's MASK to the collage's mask."""

RESTORE_NOTE = """Teach a model to repair damage, then repair a damaged artwork.

1. Training images: your works (the model learns what they look like). corruption=holes teaches it to fill missing areas; use noise, blocks or blur for grain, JPEG damage or softness.
2. Mark the damage: right-click Load Image > Open in MaskEditor and paint over the damaged areas, then Save; transparent areas of a PNG count as damage too.
3. Queue. Only the marked pixels are re-made; everything else is kept exactly. With nothing marked (an opaque picture gives an empty mask) the whole picture is cleaned: right for noise, grain or blur."""

FEW_SHOT_NOTE = """Learn a style from one to five large paintings.

1. Put 1-5 paintings in a folder (e.g. ComfyUI/input/my_paintings) and type its name into Load Image Folder: it cuts 'count' random squares of 'size' pixels from them at full resolution, so every part of every painting is seen.
2. Training sees random crop_size crops of those, batch_size per step, so even one painting gives thousands of different examples.
3. Pick a painting in 'Painting to re-make': the model re-makes the whole of it, at its own size and shape (large paintings are done in tiles).
4. Below: a latent prior learns that painting's brushwork and layout at a few scales and paints new pictures from it."""

GENERATE_NOTE = """New works in your style, learned only from your own works.

1. Put 20 or more of your works in a folder (e.g. ComfyUI/input/my_artworks) and type its name into Load Image Folder.
2. Queue: the autoencoder learns your works, then Train Latent Prior learns their latents at a few scales (seconds) and shows four samples.
3. Sample Latent paints new works: temperature below 1 stays calm, above 1 gets wild; width and height can be far larger than your works. The model is saved with its prior."""

VARIATIONS_NOTE = """Variations of one of your works (needs a model with a prior: run 'Atelier - New works in your style' first).

1. Load Autoencoder names atelier/my_style_prior_00001, the model 'Atelier - New works in your style' saves first: pick yours in it (press R to refresh the list), and load a work.
2. Three strengths: 0.25 changes the brushwork, 0.5 the details, 0.8 keeps little but the style.
3. To regenerate only part of the work, paint a mask on it (right-click > Open in MaskEditor) and connect Load Image's MASK to a Latent Variations' mask."""


WORKFLOWS = {
    "Atelier - Train on a folder": build([
        NOTE(100, (20, 20), TRAIN_NOTE, box=(440, 260)),
        *training_chain("Training images", "8", 600, 64),
        N(4, "AtelierSaveAutoencoder", (800, 20), filename_prefix="atelier/my_style", box=(320, 90)),
        N(5, "SaveImage", (800, 230), "Loss curve", filename_prefix="atelier/loss_curve", box=(320, 260)),
        N(6, "SaveImage", (800, 530), "Reconstructions (centre crops)", filename_prefix="atelier/reconstructions",
          box=(320, 260)),
        N(7, "AtelierLoadImageFolder", (400, 1000), "Keyframes", folder="my_artworks", size=128,
          mode="center-crop", count=4),
        N(8, "AtelierEncode", (800, 840), box=(240, 80)),
        N(9, "AtelierLatentWalk", (1160, 840), frames=13, method="slerp", easing="ease-in-out", loop=False,
          box=(280, 150)),
        N(10, "AtelierDecode", (1470, 840), box=(240, 60)),
        N(11, "AtelierImageGrid", (1470, 950), columns=13, padding=2, box=(240, 90)),
        N(12, "SaveImage", (1180, 20), "Walk strip (centre-cropped works)", filename_prefix="atelier/walk_strip",
          box=(480, 260)),
    ], [
        (1, "images", 3, "images"), (2, "autoencoder", 3, "autoencoder"), (3, "autoencoder", 4, "autoencoder"),
        (3, "loss_curve", 5, "images"), (3, "reconstructions", 6, "images"), (3, "autoencoder", 8, "autoencoder"),
        (7, "images", 8, "images"), (8, "latent", 9, "keyframes"), (3, "autoencoder", 10, "autoencoder"),
        (9, "frames", 10, "latent"), (10, "images", 11, "images"), (11, "grid", 12, "images"),
    ]),
    "Atelier - Mix two works": two_images(
        NOTE(100, (20, 20), MIX_NOTE, box=(420, 200)),
        N(6, "AtelierLatentMix", (1090, 300), factor=0.5, mode="slerp", box=(280, 130)), (1410, 300), "Mix",
        "atelier/mix"),
    "Atelier - Dense model on digits": build([
        NOTE(100, (20, 20), MNIST_NOTE, box=(440, 180)),
        N(1, "AtelierLoadImageFolder", (20, 240), "Digits", folder="mnist_digits", size=28, mode="resize",
          count=8000),
        N(2, "AtelierNewAutoencoder", (20, 460), "Dense 784-64-32-16", architecture="dense", latent_channels=16,
          downscale="1", width=64, image_size=28, seed=0, color="grayscale", box=(320, 240)),
        N(3, "AtelierTrainAutoencoder", (400, 240), steps=1600, batch_size=256, learning_rate=0.01, seed=0,
          loss="mse", crop_size=0, flip=False, box=(340, 300)),
        N(4, "AtelierSaveAutoencoder", (800, 20), filename_prefix="atelier/mnist_dense", box=(320, 90)),
        N(5, "SaveImage", (800, 230), "Loss curve", filename_prefix="atelier/mnist_loss", box=(320, 260)),
        N(6, "SaveImage", (800, 530), "Reconstructions", filename_prefix="atelier/mnist_reconstructions",
          box=(420, 200)),
    ], [
        (1, "images", 3, "images"), (2, "autoencoder", 3, "autoencoder"), (3, "autoencoder", 4, "autoencoder"),
        (3, "loss_curve", 5, "images"), (3, "reconstructions", 6, "images"),
    ]),
    "Atelier - Explore latents": build([
        NOTE(100, (20, 20), EXPLORE_NOTE, box=(440, 220)),
        N(1, "AtelierLoadAutoencoder", (20, 280), ae_name="atelier/my_style_00001.safetensors", box=(340, 100)),
        N(2, "AtelierLoadImageFolder", (20, 570), "My works", folder="my_artworks", size=128, mode="center-crop",
          count=8),
        N(3, "AtelierEncode", (400, 280), "Encode works", box=(240, 80)),
        N(4, "AtelierLatentDirections", (760, 20), max_directions=8, box=(280, 80)),
        N(5, "SaveImage", (1470, 20), "Direction chart", filename_prefix="atelier/direction_chart", box=(320, 200)),
        N(6, "AtelierLatentEdit", (760, 140), index=0, strength=2.0, box=(280, 170)),
        N(7, "AtelierDecode", (1110, 140), "Decode edits", box=(240, 60)),
        N(8, "AtelierImageGrid", (1110, 250), "Edit grid", columns=8, padding=2, box=(240, 90)),
        N(9, "SaveImage", (1470, 360), "Edited works", filename_prefix="atelier/direction_edit", box=(420, 200)),
        N(10, "AtelierSampleLatent", (400, 420), batch_size=8, width=128, height=128, seed=0, temperature=1.0,
          box=(280, 190)),
        N(11, "AtelierDecode", (760, 420), "Decode samples", box=(240, 60)),
        N(12, "AtelierImageGrid", (760, 530), "Sample grid", columns=8, padding=2, box=(240, 90)),
        N(13, "SaveImage", (1130, 420), "Samples", filename_prefix="atelier/samples", box=(280, 250)),
        N(14, "LoadImage", (20, 780), "Image A (content)", image="example.png", box=(300, 300)),
        N(15, "LoadImage", (340, 780), "Image B (style)", image="example.png", box=(300, 300)),
        N(16, "AtelierEncode", (700, 780), "Encode A", box=(240, 80)),
        N(17, "AtelierEncode", (700, 920), "Encode B", box=(240, 80)),
        N(18, "AtelierLatentStyleMix", (1070, 780), strength=1.0, box=(280, 110)),
        N(19, "AtelierDecode", (1390, 780), "Decode style mix", box=(240, 60)),
        N(20, "SaveImage", (1390, 890), "Style mix", filename_prefix="atelier/style_mix", box=(320, 280)),
        N(21, "AtelierVisualizeLatent", (1070, 940), mode="pca-rgb", scale=8, box=(280, 110)),
        N(22, "SaveImage", (1760, 780), "Latent view", filename_prefix="atelier/latent_view", box=(320, 280)),
    ], [
        (1, "autoencoder", 3, "autoencoder"), (2, "images", 3, "images"), (3, "latent", 4, "latents"),
        (4, "variance_chart", 5, "images"), (3, "latent", 6, "latent"), (4, "directions", 6, "directions"),
        (1, "autoencoder", 7, "autoencoder"), (6, "latent", 7, "latent"), (7, "images", 8, "images"),
        (8, "grid", 9, "images"), (1, "autoencoder", 10, "autoencoder"), (1, "autoencoder", 11, "autoencoder"),
        (10, "latent", 11, "latent"), (11, "images", 12, "images"), (12, "grid", 13, "images"),
        (1, "autoencoder", 16, "autoencoder"), (14, "image", 16, "images"), (1, "autoencoder", 17, "autoencoder"),
        (15, "image", 17, "images"), (16, "latent", 18, "content"), (17, "latent", 18, "style"),
        (1, "autoencoder", 19, "autoencoder"), (18, "latent", 19, "latent"), (19, "images", 20, "images"),
        (16, "latent", 21, "latent"), (21, "image", 22, "images"),
    ]),
    "Atelier - Walk animation": build([
        NOTE(100, (20, 20), WALK_NOTE, box=(440, 220)),
        N(1, "AtelierLoadAutoencoder", (20, 280), ae_name="atelier/my_style_00001.safetensors", box=(340, 100)),
        N(2, "AtelierLoadImageFolder", (20, 570), "Keyframes", folder="my_artworks", size=128, mode="center-crop",
          count=4),
        N(3, "AtelierEncode", (400, 280), "Encode keyframes", box=(240, 80)),
        N(4, "AtelierLatentWalk", (760, 280), frames=48, method="slerp", easing="ease-in-out", loop=True,
          box=(280, 150)),
        N(5, "AtelierDecode", (1070, 280), "Decode frames", box=(240, 60)),
        N(6, "SaveAnimatedWEBP", (1430, 20), "Walk animation (centre-cropped works)", filename_prefix="atelier/walk",
          fps=12.0, lossless=False, quality=90, method="default", box=(400, 440)),
    ], [
        (1, "autoencoder", 3, "autoencoder"), (2, "images", 3, "images"), (3, "latent", 4, "keyframes"),
        (1, "autoencoder", 5, "autoencoder"), (4, "frames", 5, "latent"), (5, "images", 6, "images"),
    ]),
    "Atelier - Collage of two works": two_images(
        NOTE(100, (20, 20), COLLAGE_NOTE, box=(440, 200)),
        N(6, "AtelierLatentCollage", (1090, 260), split="left-right", position=0.5, feather=2.0, box=(300, 170)),
        (1430, 260), "Collage", "atelier/collage"),
    "Atelier - Restore a damaged work": build([
        NOTE(100, (20, 20), RESTORE_NOTE, box=(440, 260)),
        *training_chain("Training images", "4", 800, 64, train_box=(340, 340), corruption="holes",
                        corruption_strength=0.5),
        N(4, "AtelierSaveAutoencoder", (800, 20), filename_prefix="atelier/restorer", box=(320, 90)),
        N(5, "PreviewImage", (800, 230), "Training reconstructions (centre crops)",
          box=(320, 260)),
        N(6, "LoadImage", (400, 1000), "Damaged artwork", image="example.png", box=(320, 340)),
        N(7, "AtelierRestore", (800, 1000), passes=2, box=(280, 100)),
        N(8, "SaveImage", (1120, 460), "Restored", filename_prefix="atelier/restored", box=(400, 420)),
    ], [
        (1, "images", 3, "images"), (2, "autoencoder", 3, "autoencoder"), (3, "autoencoder", 4, "autoencoder"),
        (3, "reconstructions", 5, "images"), (3, "autoencoder", 7, "autoencoder"), (6, "image", 7, "images"),
        (6, "mask", 7, "mask"), (7, "restored", 8, "images"),
    ]),
    "Atelier - Learn from one painting": build([
        NOTE(100, (20, 20), FEW_SHOT_NOTE, box=(440, 220)),
        N(1, "AtelierLoadImageFolder", (20, 280), "Crops of 1-5 paintings", folder="my_paintings", size=256,
          mode="random-crops", count=64),
        N(2, "AtelierNewAutoencoder", (20, 500), architecture="conv", latent_channels=8, downscale="4", width=32,
          image_size=64, seed=0, box=(320, 240)),
        N(3, "AtelierTrainAutoencoder", (400, 280), "Train on random crops", steps=1500, batch_size=16,
          learning_rate=0.002, seed=0, loss="mse", crop_size=64, flip=True, box=(340, 300)),
        N(4, "AtelierSaveAutoencoder", (800, 20), filename_prefix="atelier/few_shot", box=(320, 90)),
        N(5, "SaveImage", (800, 230), "Loss curve", filename_prefix="atelier/few_shot_loss", box=(320, 260)),
        N(10, "LoadImage", (20, 790), "Painting to re-make", image="example.png", box=(320, 340)),
        N(6, "AtelierEncode", (800, 530), "Encode the whole painting", box=(240, 80)),
        N(7, "AtelierDecode", (1160, 530), box=(240, 60)),
        N(9, "SaveImage", (1530, 160), "Whole painting, re-made", filename_prefix="atelier/few_shot_painting",
          box=(480, 360)),
        N(11, "AtelierTrainLatentPrior", (400, 1180), "Learn the painting's style", steps=2, seed=0,
          crop_size=128, box=(340, 560)),
        N(12, "AtelierSampleLatent", (800, 1180), "New pictures", batch_size=4, width=512, height=384, seed=0,
          temperature=1.0, box=(300, 200)),
        N(13, "AtelierDecode", (1160, 1180), box=(240, 60)),
        N(14, "AtelierImageGrid", (1160, 1290), columns=2, padding=4, box=(240, 90)),
        N(15, "SaveImage", (1530, 1180), "New pictures from the painting", filename_prefix="atelier/few_shot_new",
          box=(480, 360)),
    ], [
        (1, "images", 3, "images"), (2, "autoencoder", 3, "autoencoder"), (3, "autoencoder", 4, "autoencoder"),
        (3, "loss_curve", 5, "images"), (3, "autoencoder", 6, "autoencoder"), (10, "image", 6, "images"),
        (3, "autoencoder", 7, "autoencoder"), (6, "latent", 7, "latent"), (7, "images", 9, "images"),
        (3, "autoencoder", 11, "autoencoder"), (10, "image", 11, "images"), (11, "autoencoder", 12, "autoencoder"),
        (11, "autoencoder", 13, "autoencoder"), (12, "latent", 13, "latent"), (13, "images", 14, "images"),
        (14, "grid", 15, "images"),
    ]),
    "Atelier - New works in your style": build([
        NOTE(100, (20, 20), GENERATE_NOTE, box=(440, 260)),
        *training_chain("My works", "8", 1500, 128),
        N(4, "AtelierTrainLatentPrior", (800, 20), steps=2, seed=0, box=(340, 560)),
        N(5, "AtelierSaveAutoencoder", (1180, 20), filename_prefix="atelier/my_style_prior", box=(320, 90)),
        N(6, "AtelierSampleLatent", (800, 640), "New works", batch_size=16, width=128, height=128, seed=0,
          temperature=1.0, box=(300, 200)),
        N(7, "AtelierDecode", (1180, 640), box=(240, 60)),
        N(8, "AtelierImageGrid", (1180, 750), columns=8, padding=2, box=(240, 90)),
        N(9, "SaveImage", (1540, 260), "New works", filename_prefix="atelier/new_works", box=(480, 300)),
        N(10, "AtelierSampleLatent", (800, 900), "One large picture", batch_size=1, width=768, height=512, seed=0,
          temperature=1.0, box=(300, 200)),
        N(11, "AtelierDecode", (1180, 900), box=(240, 60)),
        N(12, "SaveImage", (1540, 640), "Large picture", filename_prefix="atelier/large_picture", box=(480, 360)),
    ], [
        (1, "images", 3, "images"), (2, "autoencoder", 3, "autoencoder"), (3, "autoencoder", 4, "autoencoder"),
        (1, "images", 4, "images"), (4, "autoencoder", 5, "autoencoder"), (4, "autoencoder", 6, "autoencoder"),
        (4, "autoencoder", 7, "autoencoder"), (6, "latent", 7, "latent"), (7, "images", 8, "images"),
        (8, "grid", 9, "images"), (4, "autoencoder", 10, "autoencoder"), (4, "autoencoder", 11, "autoencoder"),
        (10, "latent", 11, "latent"), (11, "images", 12, "images"),
    ]),
    "Atelier - Variations of a work": build([
        NOTE(100, (20, 20), VARIATIONS_NOTE, box=(440, 240)),
        N(1, "AtelierLoadAutoencoder", (20, 300), ae_name="atelier/my_style_prior_00001.safetensors",
          box=(340, 100)),
        N(2, "LoadImage", (20, 590), "A work", image="example.png", box=(340, 320)),
        N(3, "AtelierEncode", (400, 300), box=(240, 80)),
    ] + [node for i, strength in enumerate((0.25, 0.5, 0.8)) for node in (
        N(4 + 3 * i, "AtelierLatentVariations", (780, 20 + 340 * i), f"Strength {strength}", strength=strength,
          seed=i, batch_size=4, box=(300, 200)),
        N(5 + 3 * i, "AtelierDecode", (780, 250 + 340 * i), box=(240, 60)),
        N(6 + 3 * i, "SaveImage", (1160, 20 + 340 * i), f"Variations at {strength}",
          filename_prefix=f"atelier/variations_{int(strength * 100)}", box=(480, 280)),
    )], [
        (1, "autoencoder", 3, "autoencoder"), (2, "image", 3, "images"),
    ] + [link for i in range(3) for link in (
        (1, "autoencoder", 4 + 3 * i, "autoencoder"), (3, "latent", 4 + 3 * i, "latent"),
        (1, "autoencoder", 5 + 3 * i, "autoencoder"), (4 + 3 * i, "latent", 5 + 3 * i, "latent"),
        (5 + 3 * i, "images", 6 + 3 * i, "images"),
    )]),
}


def main():
    check = "--check" in sys.argv
    stale = sync({os.path.join(ROOT, "workflows", f"{name}.json"): json.dumps(wf, indent=2) + "\n"
                  for name, wf in WORKFLOWS.items()}, check, "tools/build_workflows.py")
    if check:
        return 1 if stale else 0
    print("\n".join(stale) if stale else "workflows up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
