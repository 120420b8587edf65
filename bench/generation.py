"""Generation figures (issue 19): how close new works from the latent prior come to real unseen works.

    python bench/generation.py                      # 80 thumbnails train / 25 held out, 96x96 centre crops
    python bench/generation.py --painting starry    # also the one-painting case (left 70% trains, right 30% held out)
    python bench/generation.py --out docs           # the README's pictures: samples, variations, a 1024 px sample
    python bench/generation.py --sample-seeds 8 --split second   # the spread over seeds, on the other split

All figures come from one run, each beside its baselines: (a) prior samples, (b) today's Sample Latent
(training-latent statistics, no prior), (p) a crude prior that stitches random 4x4-cell patches of training
latents, (c) the decoder ceiling (reconstructions of the training works), (d) the real floor (the training
works themselves); all against the held-out works with the multi-scale SWD (swd.py, x10^3, lower is better).
Novelty: each sample's RMS distance to its nearest training work, as a ratio to the held-out works' median
(goal: median >= 0.8, none < 0.5). The autoencoder is trained once and cached in the temp folder.
"""
import argparse
import json
import os
import resource
import tempfile
import time
import zlib

import numpy as np
import swd
import torch
from _pack import SHARED
from seams import seam_ratio
from autoencoder_atelier.models import codec
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.formats import image_to_pil as to_pil
from autoencoder_atelier.models.imagefolder import load_folder
from autoencoder_atelier.models.latent_math import sample_latents
from autoencoder_atelier.models.plots import image_grid
from autoencoder_atelier.models.prior_training import learn_prior
from autoencoder_atelier.models.storage import load_autoencoder, save_autoencoder
from autoencoder_atelier.models.train import Trainer, TrainSettings
from PIL import Image


def cached_autoencoder(name, images, steps, crop, loss="mse"):
    """The default conv model (downscale 8, 8 channels) trained with the node's settings; cached in the temp folder."""
    config = default_config("conv")
    # The default config is in the name, so a cache from before a change of defaults is not reused.
    tag = ("" if loss == "mse" else f"_{loss}") + f"_{zlib.crc32(json.dumps(config, sort_keys=True).encode()):08x}"
    path = os.path.join(tempfile.gettempdir(), f"atelier_gen_{name}_{steps}_{crop}{tag}.safetensors")
    if os.path.exists(path):
        return load_autoencoder(path)
    t = time.perf_counter()
    ae = Trainer(Autoencoder.new(config, seed=0), images,
                 TrainSettings(steps=steps, seed=0, crop_size=crop, loss=loss)).run()
    print(f"autoencoder: {steps} steps on {crop or 'whole'} px crops in {time.perf_counter() - t:.0f} s", flush=True)
    save_autoencoder(ae, path)
    return ae


def decode(ae, z):
    return codec.decode(ae, codec.latent_of(ae, z))


def stitched(ae, train_z, n, cells=4, seed=0):
    """The crude prior: each 4x4-cell block copied from a random place of a random training latent."""
    g = torch.Generator().manual_seed(seed)
    _, c, h, w = train_z.shape
    out = torch.empty(n, c, h, w)
    for i in range(n):
        for y in range(0, h, cells):
            for x in range(0, w, cells):
                k, sy, sx = (int(torch.randint(m, (1,), generator=g))
                             for m in (len(train_z), h - cells + 1, w - cells + 1))
                out[i, :, y:y + cells, x:x + cells] = train_z[k, :, sy:sy + cells, sx:sx + cells][:, :h - y, :w - x]
    return out


def figures(label, ae, prior_ae, train, held, n, seed, out):
    """One side-by-side table for a train/held-out pair."""
    z_train = codec.encode(ae, train, "crop")["samples"]
    _, c, h, w = z_train.shape
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    samples = decode(prior_ae, prior_ae.prior.sample((n, c, h, w), g))
    sample_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(seed)
    today = decode(ae, sample_latents(ae.state.latent_stats, [n, c, h, w], g))
    sets = {"(a) prior samples": samples, "(b) Sample Latent today": today,
            "(p) stitched 4x4-cell patches": decode(ae, stitched(ae, z_train, n, seed=seed)),
            "(c) decoder ceiling": decode(ae, z_train), "(d) real floor": train}
    rows = {k: swd.swd(v, held, seed=seed) for k, v in sets.items()}
    ceiling, floor = rows["(c) decoder ceiling"]["mean"], rows["(d) real floor"]["mean"]
    print(f"\n{label}: {len(train)} train / {len(held)} held out, {h * ae.config['downscale']} px, {n} samples "
          f"({sample_s:.1f} s to sample and decode)")
    print("| set vs held-out | SWD x1e3 per level (finest first) | mean | / ceiling | / floor | novelty median / min "
          "| seam ratio |")
    print("|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        nov = swd.novelty(sets[k], train, held) if k[1] in "abp" else None
        nov_s = f"{nov['median_ratio']:.2f} / {nov['min_ratio']:.2f}" if nov else ""
        print(f"| {k} | {' '.join(f'{v:.1f}' for v in r['levels'])} | {r['mean']:.1f} | {r['mean'] / ceiling:.2f}x | "
              f"{r['mean'] / floor:.2f}x | {nov_s} | {seam_ratio(sets[k], ae.config['downscale']):.2f} |", flush=True)
    if out:   # four rows of samples over one row of the works they came from (the README's picture)
        os.makedirs(out, exist_ok=True)
        grid = image_grid(torch.cat([samples[:32], train[:8]]), columns=8)
        to_pil(grid).save(os.path.join(out, f"prior_samples{'' if label == 'thumbs' else '_painting'}.png"))
    return rows


def seed_spread(prior_ae, train, held, n, seeds, rows):
    """The prior's SWD over the ceiling and the floor (figures' rows (c), (d)) and its novelty for sample seeds
    0..seeds-1: how much of a figure is the draw."""
    f = prior_ae.config["downscale"]
    shape = (n, prior_ae.prior.channels, train.shape[1] // f, train.shape[2] // f)
    means, medians, mins = [], [], []
    for seed in range(seeds):
        samples = decode(prior_ae, prior_ae.prior.sample(shape, torch.Generator().manual_seed(seed)))
        means.append(swd.swd(samples, held, seed=seed)["mean"])
        nov = swd.novelty(samples, train, held)
        medians.append(nov["median_ratio"])
        mins.append(nov["min_ratio"])
    m = torch.tensor(means)
    print(f"\nprior samples over {seeds} sample seeds: SWD {m.mean():.1f} +- {m.std():.1f} (each: "
          f"{' '.join(f'{v:.1f}' for v in means)})", flush=True)
    for name in ("(c) decoder ceiling", "(d) real floor"):
        r = m / rows[name]["mean"]
        print(f"  / {name[4:]} ({rows[name]['mean']:.1f}): {r.mean():.3f}x +- {r.std():.3f}")
    print(f"  novelty median {min(medians):.2f}-{max(medians):.2f}, min {min(mins):.2f}", flush=True)


def train_prior(ae, images, args):
    t = time.perf_counter()
    out = learn_prior(ae, images, args.crop_size)
    out.prior.fit()
    print(f"prior: {len(images)} works learned in {time.perf_counter() - t:.1f} s "
          f"({out.prior.crop}x{out.prior.crop}-cell compositions, {out.prior.block}x{out.prior.block}-cell blocks)",
          flush=True)
    return out


def speed(prior_ae, out):
    g = torch.Generator().manual_seed(0)
    c = prior_ae.prior.channels
    t = time.perf_counter()
    decode(prior_ae, prior_ae.prior.sample((16, c, 12, 12), g))
    small = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    big = decode(prior_ae, prior_ae.prior.sample((1, c, 128, 128), g))
    large = time.perf_counter() - t
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    print(f"\nspeed: 16 samples at 96x96 {small:.1f} s (goal <= 10 s); one 1024x1024 sample {large:.1f} s "
          f"(goal <= 60 s), peak memory grew {grown:.0f} MB", flush=True)
    if out:
        to_pil(big).save(os.path.join(out, "prior_sample_1024.png"))


def variation_figures(prior_ae, train, held, seed=0):
    """Latent Variations of the held-out works (2 each) at four strengths: realism (SWD against the training works,
    beside the held-out works' own reconstructions, which a variation that changed nothing would score) and how
    far each wanders (RMS pixel distance to the work's reconstruction)."""
    z = codec.encode(prior_ae, held, "crop")["samples"].repeat_interleave(2, 0)
    recon = decode(prior_ae, z)
    ref = swd.swd(recon, train, seed=seed)["mean"]
    print(f"\nvariations of the {len(held)} held-out works (2 each) vs the training works: SWD / the works' own "
          f"reconstructions ({ref:.1f}), and RMS distance to the work")
    print("| strength | SWD per level | mean | / reconstructions | distance |\n|---|---|---|---|---|")
    for strength in (0.25, 0.5, 0.8, 1.0):
        v = decode(prior_ae, prior_ae.prior.vary(z, strength, torch.Generator().manual_seed(seed)))
        r = swd.swd(v, train, seed=seed)
        away = float((v - recon).pow(2).mean(dim=(1, 2, 3)).sqrt().mean())
        print(f"| {strength} | {' '.join(f'{x:.1f}' for x in r['levels'])} | {r['mean']:.1f} | {r['mean'] / ref:.2f}x "
              f"| {away:.3f} |", flush=True)


def variations_picture(prior_ae, works, out):
    """Rows: a held-out work, then variations at strength 0.25, 0.5 and 0.8 (three each)."""
    z = codec.encode(prior_ae, works, "crop")["samples"]
    rows = []
    for i in range(len(works)):
        zs = [prior_ae.prior.vary(z[i:i + 1].expand(3, -1, -1, -1), s, torch.Generator().manual_seed(i))
              for s in (0.25, 0.5, 0.8)]
        rows += [works[i:i + 1]] + [decode(prior_ae, v) for v in zs]
    to_pil(image_grid(torch.cat(rows), columns=10)).save(os.path.join(out, "prior_variations.png"))


def painting_case(args):
    folder = os.path.join(SHARED, "art", "paintings")
    name = next(p for p in sorted(os.listdir(folder)) if args.painting in p.lower())
    pic = Image.open(os.path.join(folder, name)).convert("RGB")
    pic = pic.resize((round(pic.width * 512 / pic.height), 512), Image.LANCZOS)
    img = torch.from_numpy(np.asarray(pic, dtype=np.float32) / 255)[None]
    cut = int(img.shape[2] * 0.7) // 8 * 8
    left, right = img[:, :, :cut], img[:, :, cut:]

    def crops(x, n, seed):
        g = torch.Generator().manual_seed(seed)
        ys = torch.randint(x.shape[1] - 95, (n,), generator=g)
        xs = torch.randint(x.shape[2] - 95, (n,), generator=g)
        return torch.stack([x[0, y:y + 96, xx:xx + 96] for y, xx in zip(ys.tolist(), xs.tolist())])

    ae = cached_autoencoder(f"painting_{args.painting}", left, args.ae_steps, 64, args.loss)
    prior_ae = train_prior(ae, left, args)
    train, held = crops(left, 80, 1), crops(right, 25, 2)
    rows = figures(f"one painting ({name}, 512 px tall)", ae, prior_ae, train, held, args.samples, 0, args.out)
    if args.sample_seeds > 1:
        seed_spread(prior_ae, train, held, args.samples, args.sample_seeds, rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ae-steps", type=int, default=600, help="autoencoder training steps (node defaults otherwise)")
    ap.add_argument("--ae-crop", type=int, default=64, help="autoencoder training crops (quality.py's art setting)")
    ap.add_argument("--crop-size", type=int, default=128, help="Train Latent Prior's crop_size")
    ap.add_argument("--loss", default="mse", choices=["mse", "sharp"], help="the autoencoder's training loss")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--painting", default="", help="also the one-painting case, e.g. starry, wave, shipwreck")
    ap.add_argument("--out", default="", help="folder for PNG grids of the samples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", default="bench", choices=["bench", "second"],
                    help="thumbnails: bench = 0-79 train / 80-104 held out; second = 25-104 train / 0-24 held out")
    ap.add_argument("--sample-seeds", type=int, default=1,
                    help="also the prior's SWD / ceiling over this many sample seeds (mean +- std)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = load_folder(os.path.join(SHARED, "art", "thumbs"), 96, "center-crop")
    # The second split holds out the first 25 thumbnails instead of the last: a check that a change is not tuned
    # to one split.
    train, held = (images[25:], images[:25]) if args.split == "second" else (images[:80], images[80:])
    ae = cached_autoencoder("thumbs" if args.split == "bench" else "thumbs_second", train, args.ae_steps,
                            args.ae_crop, args.loss)
    prior_ae = train_prior(ae, train, args)
    rows = figures("thumbs", ae, prior_ae, train, held, args.samples, 0, args.out)
    if args.sample_seeds > 1:
        seed_spread(prior_ae, train, held, args.samples, args.sample_seeds, rows)
    variation_figures(prior_ae, train, held)
    speed(prior_ae, args.out)
    if args.out:
        variations_picture(prior_ae, held[:4], args.out)
    if args.painting:
        painting_case(args)


if __name__ == "__main__":
    main()
