"""Quality figures from the foundation issue, each beside its baseline measured in the same run.

    python bench/quality.py mnist   # dense 784-64-32-16, 50 epochs: eval MSE vs a plain replica and PCA-16
    python bench/quality.py art     # conv AE vs PCA of 8x8 patches at 6x and 48x compression (PSNR)
    python bench/quality.py art --steps 25000   # a fixed step count instead of the 9.5-minute budget
    python bench/quality.py curve --curve 300,1000,3000   # node defaults: held-out PSNR vs steps, vs PCA
    python bench/quality.py sharp --steps 1500  # loss mse vs sharp: PSNR, MS-SSIM, finest-level SWD; refine_steps

Reads ../shared/data (not shipped with the pack). Prints a Markdown table.
"""
import argparse
import math
import os
import time

import numpy as np
import torch
from PIL import Image

from _pack import SHARED
from seams import grid_pattern_ratio, seam_ratio
from swd import finest_level_swd

from autoencoder_atelier.models.autoencoder import Autoencoder  # noqa: E402
from autoencoder_atelier.models.config import default_config  # noqa: E402
from autoencoder_atelier.models.grain import add_grain  # noqa: E402
from autoencoder_atelier.models.imagefolder import load_folder  # noqa: E402
from autoencoder_atelier.models.losses import ms_ssim  # noqa: E402
from autoencoder_atelier.models.pca import principal_components  # noqa: E402
from autoencoder_atelier.models.codec import encode  # noqa: E402
from autoencoder_atelier.models.plots import image_grid  # noqa: E402
from autoencoder_atelier.models.train import TrainSettings, Trainer  # noqa: E402
from autoencoder_atelier.models.validation import score  # noqa: E402

# The art settings: both downscale 8, 32 latent channels (6x) or 4 (48x); PCA keeps as many components.
SETTINGS = {"6x": 32, "48x": 4}
DOWNSCALE = 8
GRAIN = 0.01   # sharp: std of the grain added to mse's pictures for the reference row (0..1 pixel scale)


def psnr_pair(per_image_mse):
    """(pooled PSNR over the whole set, mean of per-image PSNRs), in dB."""
    e = torch.as_tensor(per_image_mse, dtype=torch.float64)
    return float(10 * torch.log10(1 / e.mean())), float((10 * torch.log10(1 / e)).mean())


def pca_mse(train_rows, eval_rows, k, n_images=1):
    """Per-image MSE of PCA-k reconstructions (rows of eval_rows grouped into n_images equal parts)."""
    mean, basis, _ = principal_components(train_rows, k)
    rec = ((eval_rows.double() - mean) @ basis.T @ basis + mean).clamp(0, 1)
    return ((rec - eval_rows.double()) ** 2).reshape(n_images, -1).mean(1)


def patches(x, p=8):
    """[N,H,W,3] -> [N*(H/p)*(W/p), p*p*3]"""
    n, h, w, c = x.shape
    return x.reshape(n, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, p * p * c)


@torch.no_grad()
def ae_mse(ae, images):
    """Per-image MSE of the autoencoder's reconstructions (in the model's own channels)."""
    x = images.movedim(-1, 1)
    net = ae.model.eval()
    y = torch.cat([net.decode(net.encode(x[i:i + 32])) for i in range(0, len(x), 32)])
    if net.channels == 1:
        y, x = y[:, :1], x[:, :1]
    return ((y - x) ** 2).flatten(1).mean(1)


def timed_training(ae, images, settings, minutes):
    """Pick the step count that fits the time budget from a short timing run, then train."""
    if minutes:
        # Warm up past the first steps (kernel selection, first-touch memory), which would make
        # the estimate too slow and leave part of the budget unused (6112 steps in 396 of 570 s).
        probe = Trainer(ae, images, TrainSettings(**{**settings.__dict__, "steps": 40}))
        with torch.inference_mode(False):
            for i in range(10):
                probe.step(i)
            t = time.perf_counter()
            for i in range(10, 40):
                probe.step(i)
        per_step = (time.perf_counter() - t) / 30
        settings.steps = int(minutes * 60 * 0.95 / per_step)
    t = time.perf_counter()
    out = Trainer(ae, images, settings).run()
    return out, time.perf_counter() - t


def mnist(args):
    data = np.load(os.path.join(SHARED, "mnist", "mnist_test10k.npz"))["data"]
    x = torch.from_numpy(data).float().div(255)[..., None].expand(-1, -1, -1, 3).contiguous()
    train, test = x[:8000], x[8000:]
    rows = []
    # Plain replica of the seed: Adam 1e-3, constant, batch 256, 50 epochs, shuffled epochs.
    torch.manual_seed(0)
    cfg = default_config("dense", channels=1)
    net = Autoencoder.new(cfg, seed=0).model.train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    flat = train[..., 0].reshape(8000, -1)
    t = time.perf_counter()
    for _ in range(50):
        for idx in torch.randperm(8000).split(256):
            b = flat[idx]
            loss = ((net.decoder(net.encoder(b)) - b) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    plain = Autoencoder(cfg, net.eval())
    rows.append(("plain replica (Adam 1e-3, 50 epochs)", ae_mse(plain, test).mean(), time.perf_counter() - t))
    flat_test = test[..., 0].reshape(2000, -1)
    rows.append(("PCA-16", pca_mse(flat, flat_test, 16).mean(), 0.0))
    steps = 50 * math.ceil(8000 / 256)
    ae = Autoencoder.new(cfg, seed=0)
    s = TrainSettings(steps=steps, batch_size=256, learning_rate=args.lr or 1e-2, seed=0, flip=False)
    out, secs = timed_training(ae, train, s, 0)
    rows.append((f"Atelier dense ({steps} steps, lr {s.learning_rate:g}, no flips)", ae_mse(out, test).mean(), secs))
    print("| MNIST 784-64-32-16 | eval MSE (last 2,000) | train s |\n|---|---|---|")
    for name, mse, secs in rows:
        print(f"| {name} | {mse:.4f} | {secs:.0f} |")


def art_split(args):
    """The art setting: 80 training and 25 held-out thumbnails at 96x96."""
    resample = getattr(Image.Resampling, args.resample.upper())
    images = load_folder(os.path.join(SHARED, "art", "thumbs"), 96, "center-crop", resample=resample)
    return images[:80], images[80:]


def art(args):
    train, test = art_split(args)
    print(f"train {len(train)} / eval {len(test)} thumbnails at 96x96 ({args.resample} resampling)")
    print("PSNR as pooled over the 25 images / mean of per-image PSNRs")
    print("| setting | PCA 8x8 patches | Atelier conv AE | AE on its training images | AE config | steps | train s |\n"
          "|---|---|---|---|---|---|---|")
    for label, k, arch in [("6x", 32, dict(downscale=args.f6, latent_channels=3 * args.f6 ** 2 // 6)),
                           ("48x", 4, dict(downscale=args.f48, latent_channels=max(1, 3 * args.f48 ** 2 // 48)))]:
        if args.only and args.only != label:
            continue
        base = psnr_pair(pca_mse(patches(train), patches(test), k, len(test)))
        cfg = default_config("conv", width=args.width, blocks=args.blocks, **arch)
        ae = Autoencoder.new(cfg, seed=0)
        s = TrainSettings(batch_size=args.batch, learning_rate=args.lr or 2e-3, seed=0, loss=args.loss,
                          crop_size=args.crop, precision=args.precision, steps=args.steps)
        out, secs = timed_training(ae, train, s, 0 if args.steps else args.minutes)
        got, seen = psnr_pair(ae_mse(out, test)), psnr_pair(ae_mse(out, train))   # seen - got: overfitting
        print(f"| {label} | {base[0]:.2f} / {base[1]:.2f} dB | {got[0]:.2f} / {got[1]:.2f} dB | "
              f"{seen[0]:.2f} / {seen[1]:.2f} dB | "
              f"f{cfg['downscale']} c{cfg['latent_channels']} "
              f"w{cfg['width']} b{cfg['blocks']} | {s.steps} | {secs:.0f} |", flush=True)


def node_defaults(args, **overrides):
    """TrainSettings as the Train node's defaults give them (crop auto, validation on), the run's seed."""
    return TrainSettings(**{"seed": args.seed, "precision": args.precision, **overrides})


def curve(args):
    """Held-out PSNR against steps with the node's defaults, beside PCA of the same split: one run per
    step count (the kept weights), and within the longest run the held-out PSNR of the current weights
    (what training without early stopping would return at that step)."""
    train, test = art_split(args)
    x = test.movedim(-1, 1)
    print("held-out PSNR (25 works, pooled dB) with the Train node's defaults (crop auto, validation on)\n"
          "| setting | PCA | steps | kept weights (step) | last step | lowest during the run |\n"
          "|---|---|---|---|---|---|")
    for label, k in SETTINGS.items():
        if args.only and args.only != label:
            continue
        pca = psnr_pair(pca_mse(patches(train), patches(test), k, len(test)))[0]
        for steps in args.curve:
            ae = Autoencoder.new(default_config("conv", downscale=DOWNSCALE, latent_channels=k), seed=args.seed)
            trainer = Trainer(ae, train, node_defaults(args, steps=steps), args.device)
            during = []

            def on_step(done, total, _loss):
                if done % args.every == 0 or done == total:
                    during.append((done, score(trainer.net, x.to(args.device))))

            out = trainer.run(on_step)
            out.model.to("cpu")
            kept = psnr_pair(ae_mse(out, test))[0]
            print(f"| {label} | {pca:.2f} | {steps} | {kept:.2f} ({out.state.step}) | {during[-1][1]:.2f} | "
                  f"{min(v for _, v in during):.2f} |", flush=True)
        print(f"{label} held-out PSNR of the current weights by step ({steps}-step run): "
              + ", ".join(f"{d}: {v:.2f}" for d, v in during), flush=True)


def step_seconds(ae, images, settings, device="cpu", n=12):
    """Median seconds per training step of a model already past the sharp warm-up."""
    trainer = Trainer(ae, images, settings, device)
    times = []
    with torch.inference_mode(False):
        for i in range(n):
            t = time.perf_counter()
            trainer.step(i)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return sorted(times[2:])[len(times[2:]) // 2]


def sharp_row(label, name, pictures, test, ms="-", secs="-"):
    """One row of the sharp table: pictures [25,H,W,C] against the held-out works they re-make."""
    p = psnr_pair(((pictures - test) ** 2).flatten(1).mean(1))
    print(f"| {label} | {name} | {p[0]:.2f} / {p[1]:.2f} dB | {ms} | {finest_level_swd(pictures, test):.1f} | "
          f"{seam_ratio(pictures, DOWNSCALE):.2f} | {grid_pattern_ratio(pictures, DOWNSCALE):.2f} | {secs} |",
          flush=True)


def sharp(args):
    """loss mse vs sharp, same steps and seed, on the 25 held-out works; then refine_steps on the sharp model."""
    train, test = art_split(args)
    print(f"{args.steps} steps each, node defaults otherwise; held-out works: 25 at 96x96 "
          f"(their own seam ratio: {seam_ratio(test, DOWNSCALE):.2f}, grid pattern: "
          f"{grid_pattern_ratio(test, DOWNSCALE):.2f}; their finest-level SWD against themselves, "
          f"the metric's sampling floor that no reconstruction gets under: {finest_level_swd(test, test):.1f})\n"
          "| setting | loss | PSNR pooled / mean | MS-SSIM | finest-level SWD (x1e3) | seam ratio | grid pattern "
          "| s per step (later steps) |\n"
          "|---|---|---|---|---|---|---|---|")
    picture = []
    for label, k in SETTINGS.items():
        if args.only and args.only != label:
            continue
        recons = {}
        for loss in args.losses:
            ae = Autoencoder.new(default_config("conv", downscale=DOWNSCALE, latent_channels=k), seed=args.seed)
            out = Trainer(ae, train, node_defaults(args, steps=args.steps, loss=loss), args.device).run()
            out.model.to("cpu")
            with torch.no_grad():
                y = torch.cat([out.model.decode(out.model.encode(b)) for b in test.movedim(-1, 1).split(32)])
            gain = out.state.summary.get("grain", 0.0)
            if gain:   # what Decode gives an artist: the decoder's picture plus the model's grain (grain.py)
                sharp_row(label, f"{loss}, decoder alone (grain 0)", y.movedim(1, -1), test)
                y = add_grain(y, gain)
            recons[loss] = y.movedim(1, -1)
            ms = float(torch.stack([ms_ssim(a[None], b[None]) for a, b in zip(y, test.movedim(-1, 1))]).mean())
            secs = step_seconds(out, train, node_defaults(args, steps=12, loss=loss), args.device)
            sharp_row(label, f"{loss} (grain gain {gain:.2f})" if gain else loss, recons[loss], test, f"{ms:.4f}",
                      f"{secs:.3f}")
        if "mse" in recons:
            # Reference, not a decoder: mse's pictures plus seeded per-pixel grain. The SWD normalises each set's
            # detail to one scale, so plain noise lowers it too; a texture term has to beat this row.
            grain = (recons["mse"] + GRAIN * torch.randn(test.shape, generator=torch.Generator().manual_seed(0)))
            sharp_row(label, f"mse + grain {GRAIN} (reference)", grain.clamp(0, 1), test)
        picture.append(torch.stack([test, *recons.values()], 1))   # [25,1+losses,H,W,C]
        for steps in (0, 10, 30) if args.refine else ():
            t = time.perf_counter()
            z = encode(out, test, refine_steps=steps)["samples"]
            secs = (time.perf_counter() - t) / len(test)
            with torch.no_grad():
                y = out.model.decode(z)
            err = ((y - test.movedim(-1, 1)) ** 2).flatten(1).mean(1)
            print(f"{label} {loss} model, refine_steps {steps}: held-out PSNR {psnr_pair(err)[0]:.2f} / "
                  f"{psnr_pair(err)[1]:.2f} dB, {secs:.3f} s per 96x96 image", flush=True)
    if args.picture and picture:
        # Original, then one column per loss: 48px crops of three held-out works, 4x nearest so pixels stay pixels.
        rows = torch.cat([p[list(args.works)] for p in picture])[:, :, 24:72, 24:72]
        big = rows.repeat_interleave(4, 2).repeat_interleave(4, 3)
        grid = image_grid(big.flatten(0, 1), columns=rows.shape[1])[0].numpy()
        Image.fromarray((grid * 255 + 0.5).astype("uint8")).save(args.picture)
        print(f"wrote {args.picture}: rows are held-out works {list(args.works)} per setting; "
              f"columns original / {' / '.join(args.losses)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["mnist", "art", "curve", "sharp"])
    ap.add_argument("--curve", type=lambda v: [int(s) for s in v.split(",")], default=[300, 1000, 3000],
                    help="curve: step counts, one run each")
    ap.add_argument("--every", type=int, default=100, help="curve: score the held-out works every this many steps")
    ap.add_argument("--picture", default="", help="sharp: write the original / mse / sharp crops here (PNG)")
    ap.add_argument("--works", type=lambda v: [int(s) for s in v.split(",")], default=[0, 5, 12],
                    help="sharp: which held-out works the picture shows")
    ap.add_argument("--minutes", type=float, default=9.5, help="art: training budget per setting")
    ap.add_argument("--steps", type=int, default=0, help="art: train this many steps instead of a time budget")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64, help="art: random training crop size (0 = whole images)")
    ap.add_argument("--loss", default="mse")
    ap.add_argument("--f6", type=int, default=4, help="art: downscale for the 6x setting")
    ap.add_argument("--f48", type=int, default=8, help="art: downscale for the 48x setting")
    ap.add_argument("--only", choices=["6x", "48x"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0,
                    help="curve, sharp: the training seed (model start, crops, the validation hold-back)")
    ap.add_argument("--losses", type=lambda v: v.split(","), default=["mse", "sharp"],
                    help="sharp: the losses to train, side by side (e.g. sharp alone when mse's row is known)")
    ap.add_argument("--no-refine", dest="refine", action="store_false",
                    help="sharp: skip the refine_steps 0 / 10 / 30 figures")
    ap.add_argument("--device", default="cpu", help="curve, sharp: where to train (e.g. cuda)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--resample", default="lanczos", choices=["lanczos", "bicubic", "bilinear"],
                    help="art: filter that scales the thumbnails to 96px (the loader's is lanczos, the sharpest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"mnist": mnist, "art": art, "curve": curve, "sharp": sharp}[args.which](args)
