"""Large collections: training on random crops of many full-resolution works, lazy dataset against an IMAGE batch.

    python bench/large_collections.py                      # 500 works of 1024x1024, crops of 256 (bench/RESULTS.md)
    python bench/large_collections.py --works 60 --side 512 --steps 6   # a quick look
    python bench/large_collections.py --prior            # also Train Latent Prior from the dataset

Generates the works (procedural, JPEG) in a temporary folder, then measures each path in its own process
(peak RSS is per process): set-up (folder to the first training step) and training steps/s on the same model
and settings, in turns (image, dataset, dataset, image, ...) with medians reported. The IMAGE path (Load
Image Folder -> Train images) loads the largest number of works whose float32 batch fits --image-budget-mb;
the dataset path (Load Dataset Folder -> Train dataset) takes them all. With --prior, a latent prior is also
learned from the whole dataset, once (crop_size --crop): its time, peak RSS and latent size.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import _pack  # noqa: F401  (loads the pack as autoencoder_atelier)

from autoencoder_atelier.models import procedural
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.prior_training import learn_prior
from autoencoder_atelier.models.train import Trainer, TrainSettings


def make_works(folder, count, side):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        procedural.make_image(i, side).save(os.path.join(folder, f"work_{i:04d}.jpg"), quality=92)


def measure(path, folder, count, side, crop, batch, steps):
    """One path, in this process: {setup_s, steps_per_s, peak_rss_mb, works}."""
    import torch
    from autoencoder_atelier.models.dataset import WorkFolder
    from autoencoder_atelier.models.imagefolder import load_folder
    torch.manual_seed(0)
    ae = Autoencoder.new(default_config("conv"), seed=0)
    settings = TrainSettings(steps=steps, batch_size=batch, crop_size=crop, seed=0, precision="fp32")
    t = time.perf_counter()
    if path == "prior":
        prior = learn_prior(ae, WorkFolder(folder), crop).prior
        return {"setup_s": round(time.perf_counter() - t, 2), "works": prior.summary["works"],
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "latent_mb": round(sum(z.numel() for z in prior.latents) * 4 / 2 ** 20, 1)}
    data = WorkFolder(folder) if path == "dataset" else load_folder(folder, side, "center-crop", count)
    trainer = Trainer(ae, data, settings)
    with torch.inference_mode(False):
        trainer.step(0)
        setup = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(1, steps + 1):
            trainer.step(i)
        rate = steps / (time.perf_counter() - t)
    works = len(data) if path == "dataset" else int(data.shape[0])
    return {"setup_s": round(setup, 2), "steps_per_s": round(rate, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "works": works}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--works", type=int, default=500)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--image-budget-mb", type=int, default=1536, help="RAM the IMAGE batch may take")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="measurements per path, in turns; medians are reported")
    ap.add_argument("--prior", action="store_true", help="also learn a latent prior from the dataset (once)")
    ap.add_argument("--measure", nargs=3, metavar=("PATH", "FOLDER", "COUNT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    if a.measure:
        path, folder, count = a.measure
        print(json.dumps(measure(path, folder, int(count), a.side, a.crop, a.batch, a.steps)))
        return
    fits = min(a.works, a.image_budget_mb * 2 ** 20 // (a.side * a.side * 3 * 4))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        make_works(tmp, a.works, a.side)
        print(f"generated {a.works} works of {a.side}x{a.side} in {time.perf_counter() - t:.0f}s", flush=True)
        runs = {"image": [], "dataset": [], "prior": []}
        # A B B A ...: load from other processes on a shared machine falls on both paths alike.
        order = [p for r in range(a.rounds) for p in (("image", "dataset") if r % 2 == 0 else ("dataset", "image"))]
        for path in order + (["prior"] if a.prior else []):
            count = fits if path == "image" else a.works
            cmd = [sys.executable, __file__, "--side", str(a.side), "--crop", str(a.crop), "--batch", str(a.batch),
                   "--steps", str(a.steps), "--threads", str(a.threads), "--measure", path, tmp, str(count)]
            runs[path].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            print(path, runs[path][-1], flush=True)
    prior = runs.pop("prior")
    results = {path: {"works": r[0]["works"], "setup_s": statistics.median(x["setup_s"] for x in r),
                      "steps_per_s": statistics.median(x["steps_per_s"] for x in r),
                      "peak_rss_mb": max(x["peak_rss_mb"] for x in r)} for path, r in runs.items()}
    img, ds = results["image"], results["dataset"]
    print("\n| path | works | set-up | steps/s | peak RSS |\n| --- | --- | --- | --- | --- |")
    for name, r in (("IMAGE batch (Load Image Folder)", img), ("lazy dataset (Load Dataset Folder)", ds)):
        print(f"| {name} | {r['works']} | {r['setup_s']:.1f} s | {r['steps_per_s']:.3f} | {r['peak_rss_mb']} MB |")
    print(f"\ndataset/IMAGE steps/s: {ds['steps_per_s'] / img['steps_per_s']:.2f}; crops {a.crop}, batch {a.batch}, "
          f"{a.steps} steps, {a.threads} thread(s); medians of {a.rounds} turns per path, peak RSS the largest")
    for p in prior:
        print(f"Train Latent Prior from the dataset (crop_size {a.crop}, untrained model): {p['works']} works in "
              f"{p['setup_s']:.1f} s, peak RSS {p['peak_rss_mb']} MB, latents {p['latent_mb']} MB")


if __name__ == "__main__":
    main()
