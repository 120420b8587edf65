"""Figures 1-4: training throughput against a plain PyTorch loop, wrapper overhead, fraction of the
machine's peak, and the dense seed model.

The candidate is always the real node (AtelierTrainAutoencoder.train inside inference mode, as
ComfyUI calls it); its steps are timed through the progress hook, so the rate includes the
node's own per-step work (batches, learning-rate schedule, gradient clipping, snapshots,
previews). The baseline is the loop a user would write from the seed's tutorial, over the same
weights computed the textbook way (figure 1: a 2x nearest upsample, then the 3x3 convolution).
"""
import copy
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from _pack import pack  # noqa: F401  (loads the pack as autoencoder_atelier)
from timing import StepClock, interleaved, matmul_peak

from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.networks import build_network
from autoencoder_atelier.models.precision import autocast_dtype
from autoencoder_atelier.models.procedural import make_digit, make_images
from autoencoder_atelier.nodes import bridge
from autoencoder_atelier.nodes.train_node import AtelierTrainAutoencoder


def node_rate(ae, images, device, steps, batch, **options):
    """Steady images/s of the Train node, and its whole wall time (setup and finish included). Validation is off
    unless asked for: these figures compare training loops on the same images, and a held-back split would
    both change the data and keep early weights (the 40-step quality check then compared two PCA starts)."""
    options.setdefault("validation", False)
    clock = StepClock(device, batch)
    bridge.HeadlessProgressBar.hook = clock
    t = time.perf_counter()
    try:
        with torch.inference_mode():
            out = AtelierTrainAutoencoder().train(ae, images=images, steps=steps, batch_size=batch, seed=0, loss="mse",
                                                  learning_rate=options.pop("learning_rate", 2e-3), **options)
    finally:
        bridge.HeadlessProgressBar.hook = None
    return clock.rate(), time.perf_counter() - t, out[0]


def textbook(ae):
    """``ae``'s network written as in TAESD and most tutorials (same weights, same function): the plain
    network, without the modules speedups.py swaps in (so out-of-place ReLUs, and upsampling as
    nn.Upsample then a 3x3 convolution at the higher resolution)."""
    plain = build_network(ae.config)
    plain.load_state_dict(ae.model.state_dict())
    return plain.to(ae.device)


def plain_rate(ae, data, device, steps, batch, memory_format=torch.contiguous_format, autocast=None, lr=2e-3,
               net=None):
    """The tutorial loop: fp32 eager, random batches from an in-memory tensor, AdamW, MSE."""
    net = copy.deepcopy(net or ae.model).to(device, memory_format=memory_format).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    data = data.to(device)
    clock = StepClock(device, batch)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,), generator=g).to(device)].contiguous(memory_format=memory_format)
        with torch.autocast(torch.device(device).type, dtype=autocast or torch.float32, enabled=autocast is not None):
            y, _ = net.training_forward(x)
        loss = F.mse_loss(y.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clock()
    return clock.rate()


def training_flops(net, side, device):
    """FLOPs of one training image (forward + backward), counted by torch's flop counter."""
    net = copy.deepcopy(net).to(device).train()
    x = torch.rand(2, net.channels, side, side, device=device)
    with FlopCounterMode(display=False) as counter:
        y, _ = net.training_forward(x)
        F.mse_loss(y, x).backward()
    return counter.get_total_flops() / 2


def psnr_db(ae, images, device):
    """PSNR of float32 reconstructions of IMAGE batch ``images``."""
    net = ae.model.to(device).eval()
    x = images.movedim(-1, 1).to(device)
    with torch.no_grad():
        y = torch.cat([net.reconstruct(x[i:i + 4]) for i in range(0, len(x), 4)])
    return float(10 * torch.log10(1 / F.mse_loss(y, x)))


AUTOCAST_NAMES = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + loss scale"}


def conv_throughput(args):
    """Figures 1-3 on the default conv model at 256x256."""
    device, side, batch = args.device, 256, 16 if not args.quick else 8
    steps, reps = (4, 2) if args.quick else (5, 3)
    images = torch.from_numpy(make_images(32, side, seed=1))
    data = images.movedim(-1, 1).contiguous()
    ae = Autoencoder.new(default_config("conv"), seed=0)
    plain_net = textbook(ae)
    fast = autocast_dtype("auto", device)
    node = dict(crop_size=side, flip=True)
    # The matmul peaks (figure 3) run in the same turns, so they see the same neighbours' load.
    med, raw = interleaved({
        "plain fp32 eager": lambda: plain_rate(ae, data, device, steps, batch, net=plain_net),
        "node (auto)": lambda: node_rate(ae, images, device, steps, batch, precision="auto", **node)[0],
        "peak fp32": lambda: matmul_peak(device, torch.float32),
        "peak bf16": lambda: matmul_peak(device, torch.bfloat16),
    }, reps)
    rows = [dict(figure=1, what=f"conv f8c8w32 training, {side}x{side}, batch {batch}: images/s",
                 baseline=med["plain fp32 eager"], candidate=med["node (auto)"],
                 ratio=med["node (auto)"] / med["plain fp32 eager"], goal=">= 3x",
                 met=med["node (auto)"] / med["plain fp32 eager"] >= 3,
                 note=f"node path: {AUTOCAST_NAMES.get(fast, 'fp32')} + channels_last + UpConv; plain: "
                      "fp32, Upsample + conv", samples=raw)]

    # Figure 1's quality condition: the fast path vs float32 after the same steps (crops keep it quick).
    q_steps = 40 if args.quick else 100
    train_set = torch.from_numpy(make_images(24, side, seed=2))
    eval_set = torch.from_numpy(make_images(8, side, seed=3))
    q = {}
    for precision in ("fp32", "auto"):
        _, secs, trained = node_rate(ae, train_set, device, q_steps, 16, precision=precision, crop_size=64)
        q[precision] = (psnr_db(trained, eval_set, device), secs)
    gap = q["fp32"][0] - q["auto"][0]
    rows.append(dict(figure=1, what=f"quality after {q_steps} steps (64px crops, batch 16): eval PSNR dB",
                     baseline=q["fp32"][0], candidate=q["auto"][0], ratio=q["auto"][0] - q["fp32"][0],
                     goal="within 0.3 dB (ratio column: dB difference)", met=abs(gap) <= 0.3,
                     note=f"wall s fp32 {q['fp32'][1]:.0f} / auto {q['auto'][1]:.0f}"))

    # Figure 2: the node's loop with the same numerics (fp32, channels_last) as a plain loop.
    s2, b2 = 128, 16
    images2 = torch.from_numpy(make_images(32, s2, seed=4))
    data2 = images2.movedim(-1, 1).contiguous()
    walls = []

    def node_fp32():
        rate, wall, _ = node_rate(ae, images2, device, steps2, b2, precision="fp32", crop_size=s2)
        walls.append(wall - steps2 * b2 / rate)
        return rate

    steps2 = 8 if args.quick else 32
    med2, raw2 = interleaved({
        "plain fp32 channels_last": lambda: plain_rate(ae, data2, device, steps2, b2, torch.channels_last),
        "node fp32": node_fp32,
    }, reps + 1)
    over = med2["plain fp32 channels_last"] / med2["node fp32"] - 1
    rows.append(dict(figure=2, what=f"wrapper overhead, same numerics (fp32, channels_last), {s2}x{s2}, batch {b2}: "
                     "images/s", baseline=med2["plain fp32 channels_last"], candidate=med2["node fp32"],
                     ratio=med2["node fp32"] / med2["plain fp32 channels_last"], goal="<= 2% slower",
                     met=over <= 0.02, note=f"node {100 * over:+.1f}% time per step; setup + finish "
                     f"(PCA start, latent statistics, grids) {sorted(walls)[len(walls) // 2]:.1f}s per run",
                     samples=raw2))

    # Figure 3: fraction of the machine's peak.
    peaks = {"fp32": med["peak fp32"], "bf16": med["peak bf16"]}
    node_peak = peaks["bf16"] if fast else peaks["fp32"]
    for name, rate, peak, net in (("plain fp32 eager", med["plain fp32 eager"], peaks["fp32"], plain_net),
                                  ("node (auto)", med["node (auto)"], node_peak, ae.model)):
        flops = training_flops(net, side, device)  # each path's own work: UpConv does less than Upsample + conv
        frac = flops * rate / peak
        rows.append(dict(figure=3, what=f"{name}: fraction of the {'bf16' if peak is peaks['bf16'] else 'fp32'} "
                         "matmul peak", baseline=peak / 1e9, candidate=flops * rate / 1e9, ratio=frac,
                         goal=">= 40%", met=frac >= 0.4, note=f"{flops / 1e9:.1f} GFLOP per training image; "
                         "baseline/candidate columns in GFLOP/s (peak / achieved)"))
    return rows


def dense_throughput(args):
    """Figure 4: the seed's 784-64-32-16 network at batch 256."""
    device, batch = args.device, 256
    steps, reps = (60, 2) if args.quick else (200, 7)
    digits = torch.stack([torch.from_numpy(__import__("numpy").asarray(make_digit(i), dtype="float32") / 255)
                          for i in range(1024)])
    images = digits[..., None].expand(-1, -1, -1, 3).contiguous()
    ae = Autoencoder.new(default_config("dense", channels=1), seed=0)
    med, raw = interleaved({
        "plain": lambda: plain_rate(ae, digits[:, None], device, steps, batch, lr=1e-2),
        "node": lambda: node_rate(ae, images, device, steps, batch, learning_rate=1e-2, crop_size=0, flip=False)[0],
    }, reps)
    return [dict(figure=4, what="dense 784-64-32-16, batch 256: samples/s", baseline=med["plain"],
                 candidate=med["node"], ratio=med["node"] / med["plain"], goal="match plain (>= 0.98x)",
                 met=med["node"] / med["plain"] >= 0.98, samples=raw)]
