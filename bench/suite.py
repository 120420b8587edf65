"""The speed benchmarks: every figure beside a baseline measured in the same run.

    python atelier.py bench [--quick] [--device cpu|cuda] [--only train,dense,codec,first-art,load]
    python bench/suite.py ...          # the same, without the CLI

Baselines and candidates run in turns (A, B, A, B ...) and medians are reported, so other load
on a shared machine affects both alike. Writes bench/results/bench-<time>.json and .md and
prints the table.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import torch

from _pack import ROOT
from codec_figures import codec_figures
from misc_figures import first_art, load_times
from train_figures import conv_throughput, dense_throughput

GROUPS = {"train": conv_throughput, "dense": dense_throughput, "codec": codec_figures,
          "first-art": first_art, "load": load_times}


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu,
            "threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"


def markdown(report):
    m = report["machine"]
    lines = [f"Run {report['date']} on {m['gpu'] or m['cpu']} ({report['device']}, {m['threads']} threads), "
             f"torch {m['torch']}; load average at start {m['load_average'][0]:.1f}"
             + (" (quick)" if report["quick"] else ""), "",
             "| # | figure | baseline | Atelier | ratio | goal | met | note |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['figure']} | {r['what']} | {fmt(r['baseline'])} | {fmt(r['candidate'])} | "
                     f"{fmt(r['ratio'])} | {r['goal']} | {fmt(r['met'])} | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="atelier.py bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller jobs (about 3 minutes)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", default="", help=f"comma-separated groups: {', '.join(GROUPS)}")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="folder for the JSON and Markdown")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        print(f"error: unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": args.device,
              "quick": args.quick, "machine": machine(), "rows": []}
    for name in groups:
        t = time.perf_counter()
        rows = GROUPS[name](args)
        report["rows"] += rows
        print(f"[{name} {time.perf_counter() - t:.0f}s]\n" + markdown({**report, "rows": rows}).split("\n", 2)[2],
              flush=True)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "bench-" + report["date"].replace(":", ""))
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(markdown(report))
    print(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
