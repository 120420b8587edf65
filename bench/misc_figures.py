"""Figures 6-7: time to first art from an empty models folder, and model load time and file sizes."""
import os
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

from _pack import ROOT
from timing import interleaved

from autoencoder_atelier.models import storage
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.networks import build_network
from autoencoder_atelier.models.procedural import make_images
from autoencoder_atelier.models.train import TrainSettings, train

GOAL_FIRST_ART_S = 180


def first_art(args):
    """Figure 6: `atelier.py demo` in fresh folders (a new process: imports count too)."""
    extra = ["--set", "steps=60"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [f"--{k}-dir={os.path.join(tmp, k)}" for k in ("models", "output", "input")]
        env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {})}
        t = time.perf_counter()
        done = subprocess.run([sys.executable, os.path.join(ROOT, "atelier.py"), *dirs, "-q", "demo", *extra],
                              capture_output=True, text=True, env=env, timeout=1800)
        seconds = time.perf_counter() - t
        if done.returncode:
            raise RuntimeError(done.stderr[-500:])
        strips = [f for _, _, fs in os.walk(os.path.join(tmp, "output")) for f in fs if "walk" in f]
    return [dict(figure=6, what="time to first art: default training workflow from an empty models folder to "
                 f"its saved walk strip{' (quick: 60 steps)' if args.quick else ''}, seconds",
                 baseline=GOAL_FIRST_ART_S, candidate=seconds, ratio=seconds / GOAL_FIRST_ART_S,
                 goal=f"<= {GOAL_FIRST_ART_S} s", met=bool(strips) and seconds <= GOAL_FIRST_ART_S,
                 note="baseline column = the goal; includes starting Python and importing torch")]


def load_times(args):
    """Figure 7: storage.load_autoencoder (all checks) vs a bare safetensors load into a fresh module."""
    rows = []
    reps = 5 if args.quick else 15
    images = torch.from_numpy(make_images(8, 64))
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in (("conv f8c8w32", default_config("conv")),
                          ("conv f8c16w64b2", default_config("conv", latent_channels=16, width=64, blocks=2)),
                          ("dense 784-64-32-16", default_config("dense", channels=1))):
            ae = train(Autoencoder.new(cfg), images if cfg["architecture"] != "dense" else
                       torch.from_numpy(make_images(8, 28)), TrainSettings(steps=2, batch_size=4))
            path = os.path.join(tmp, name.replace(" ", "_") + ".safetensors")
            storage.save_autoencoder(ae, path)

            def bare(path=path, cfg=cfg):
                t = time.perf_counter()
                tensors = load_file(path)
                net = build_network(cfg)
                net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
                return time.perf_counter() - t

            def atelier(path=path):
                t = time.perf_counter()
                storage.load_autoencoder(path)
                return time.perf_counter() - t

            med, _ = interleaved({"bare": bare, "atelier": atelier}, reps)
            params = sum(p.numel() for p in ae.model.parameters())
            rows.append(dict(figure=7, what=f"load {name}: ms", baseline=1000 * med["bare"],
                             candidate=1000 * med["atelier"], ratio=med["atelier"] / med["bare"], goal="report",
                             met=True, note=f"file {os.path.getsize(path) / 1024:.0f} KB = weights "
                             f"{params * 4 / 1024:.0f} KB + optimizer moments + history; baseline = bare "
                             "safetensors load_file + build + load_state_dict"))
    return rows
