"""Figure 5: encode + decode of big paintings: wall time and peak extra memory, whole vs tiled.

Each measurement runs in a fresh process (``python bench/codec_figures.py --child ...``) so the
memory high-water mark belongs to that one job. Baseline: the whole image in one float32 pass
(what the codec did before tiling). Candidate: ``codec.encode`` + ``codec.decode`` as the
nodes call them (bf16 where faster, tiles when a pass would exceed the memory budget).
"""
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from _pack import pack  # noqa: F401
from timing import interleaved, peak_rss_mb, rss_mb, sync

from autoencoder_atelier.models import codec, tiling
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.precision import inference_dtype


def busy_model(device):
    """The default conv model with every layer active (a fresh one starts its last layers at zero)."""
    ae = Autoencoder.new(default_config("conv"), seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in ae.model.modules():
            if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
    ae.model.to(device)
    return ae


def picture(side):
    x = torch.rand(1, 3, side // 4, side // 4, generator=torch.Generator().manual_seed(0))
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def child(mode, side, device):
    """One measurement in this process; prints a JSON line."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    ae, x = busy_model(device), picture(side)
    if mode == "seam":  # tiled vs whole in the codec's own precision, forced tiles of the default size
        dtype = inference_dtype(ae.config, device)
        whole = tiling.decode(ae.model, tiling.encode(ae.model, x, device, dtype, budget=1 << 40), device, dtype,
                              budget=1 << 40)
        tiled = tiling.decode(ae.model, tiling.encode(ae.model, x, device, dtype, budget=16 << 20), device, dtype,
                              budget=16 << 20)
        exact = tiling.decode(ae.model, tiling.encode(ae.model, x, device, budget=1 << 40), device, budget=1 << 40)
        print(json.dumps({"max_error_levels": float((whole - tiled).abs().max() * 255),
                          "fast_vs_fp32_levels": float((whole - exact).abs().max() * 255)}))
        return
    images = x.movedim(1, -1).contiguous()
    cuda = torch.device(device).type == "cuda"
    # One-time costs out of the figure, for both modes alike: library start-up, the fused-op check
    # and the precision measurement (each once per process; a user pays them on the first small image too).
    _pass(mode, ae, images[:, :64, :64], device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else rss_mb()
    t = time.perf_counter()
    out = _pass(mode, ae, images, device)
    sync(device)
    seconds = time.perf_counter() - t
    extra = (torch.cuda.max_memory_allocated() - before) / 2 ** 20 if cuda else peak_rss_mb() - before
    assert out.numel() == images.numel()
    print(json.dumps({"seconds": seconds, "extra_mb": extra}))


def _pass(mode, ae, images, device):
    if mode == "whole-fp32":
        with torch.no_grad():
            return ae.model.decode(ae.model.encode(images.movedim(-1, 1).to(device))).cpu()
    return codec.decode(ae, codec.encode(ae, images, device=device), device=device)


def _in_child(mode, side, args):
    env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, str(side), args.device],
                          capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"{mode} at {side}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def codec_figures(args):
    rows = []
    reps = 1 if args.quick else 2
    for side, goal_s, goal_mb in ((2048, 1.5, 500), (4096, None, 2048)):
        runs = {"codec": lambda s=side: _in_child("codec", s, args)}
        if not (args.quick and side == 4096):   # the whole 4096 pass alone takes a minute on 2 cores
            runs = {"whole fp32": lambda s=side: _in_child("whole-fp32", s, args), **runs}
        med, raw = interleaved(runs, reps)
        base = med.get("whole fp32")
        cand = med["codec"]
        rows.append(dict(figure=5, what=f"encode+decode {side}x{side}: seconds", baseline=base and base["seconds"],
                         candidate=cand["seconds"], ratio=base and base["seconds"] / cand["seconds"],
                         goal=f"<= {goal_s} s" if goal_s else "works",
                         met=cand["seconds"] <= goal_s if goal_s else True,
                         note="ratio = speed-up over the whole fp32 pass", samples=raw))
        rows.append(dict(figure=5, what=f"encode+decode {side}x{side}: peak extra MB",
                         baseline=base and base["extra_mb"], candidate=cand["extra_mb"],
                         ratio=base and base["extra_mb"] > 0 and cand["extra_mb"] / base["extra_mb"] or None,
                         goal=f"<= {goal_mb} MB", met=cand["extra_mb"] <= goal_mb,
                         note="resident memory high-water mark over the input already in memory; "
                              "includes the decoded image"))
    side = 1024 if args.quick else 2048
    errors = _in_child("seam", side, args)
    seam, fast = errors["max_error_levels"], errors["fast_vs_fp32_levels"]
    rows.append(dict(figure=5, what=f"max seam error, tiled vs whole at {side}x{side} (16 MB tiles): levels of 1/255",
                     baseline=None, candidate=seam, ratio=None, goal="<= 1", met=seam <= 1))
    rows.append(dict(figure=5, what=f"max error of the codec's precision vs float32, whole {side}x{side}: levels "
                     "of 1/255", baseline=None, candidate=fast, ratio=None, goal="<= 1 (else bf16 is not the default)",
                     met=fast <= 1,
                     note="bf16 autocast with the linear path in float32, where faster; else float32 (0)"))
    return rows


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
