"""Cancel latency: the longest stretches between two Cancel checks, from the start of the demo workflow (as the
integration test runs it: 16 works of 96 px, steps 100000) through Train's set-up and its first steps.

    python bench/cancel_gaps.py                  # 8 s, torch's default threads (one per core, as ComfyUI)
    python bench/cancel_gaps.py --seconds 4 --threads 1

A Cancel waits for the next check, so the longest stretch is the worst wait. The figure depends on the load the
machine has (printed): the issue's limit is 1 s per Cancel, and no set-up phase should run over 0.3 s on a busy
2-core machine. Each stretch is named by where it began and ended (file:line, innermost first).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import _pack  # noqa: F401  (loads the pack as autoencoder_atelier)

import torch
import torch._dynamo  # noqa: F401  ComfyUI imports it at start-up; here the first meta-device op would (seconds)

from autoencoder_atelier.headless import cli
from autoencoder_atelier.models import interrupt, procedural

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINING = ("_check_forward_and_backward", "_check_backward")   # the checks inside a training step


class Enough(Exception):
    pass


def where(frame, depth=2):
    names = []
    while frame is not None and len(names) < depth:
        names.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}({frame.f_code.co_name})")
        frame = frame.f_back
    return " < ".join(names)


def record(seconds):
    """[(time, place)] of every Cancel check while the demo workflow runs for ``seconds``."""
    checks = [(time.perf_counter(), "start")]

    def check():
        checks.append((time.perf_counter(), where(sys._getframe(2))))
        if checks[-1][0] - checks[0][0] > seconds:
            raise Enough

    previous = interrupt._hook
    interrupt.install(check)
    with tempfile.TemporaryDirectory() as tmp:
        procedural.write_folder(os.path.join(tmp, "input", "my_artworks"), count=16, size=96)
        checks[0] = (time.perf_counter(), "start")
        try:
            code = cli.main(["-q", "--models-dir", os.path.join(tmp, "models"), "--output-dir",
                             os.path.join(tmp, "out"), "--input-dir", os.path.join(tmp, "input"), "run",
                             cli.DEMO_WORKFLOW, "--set", "steps=100000", "--set", "filename_prefix=cancel_gaps"])
            raise SystemExit(f"the demo workflow ended (exit {code}) before the measurement did")
        except Enough:
            pass
        finally:
            interrupt.install(previous)
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="how long to run before stopping")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--show", type=int, default=5, help="longest stretches to list per part")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    checks = record(a.seconds)
    t0 = checks[0][0]
    first_step = next((t for t, place in checks if any(f"({name})" in place for name in TRAINING)), checks[-1][0])
    stretches = [(b[0] - a_[0], a_[0] - t0, a_[1].split(" < ")[0], b[1]) for a_, b in zip(checks, checks[1:])]
    report = {"load_1min": os.getloadavg()[0], "threads": torch.get_num_threads(), "checks": len(checks),
              "set_up_s": round(first_step - t0, 2)}
    for part, chosen in (("set-up", [s for s in stretches if s[1] + s[0] <= first_step - t0]),
                         ("training", [s for s in stretches if s[1] + s[0] > first_step - t0])):
        chosen.sort(reverse=True)
        report[f"longest_{part}_s"] = round(chosen[0][0], 3) if chosen else None
        print(f"{part}: longest stretches between Cancel checks")
        for length, at, start, end in chosen[:a.show]:
            print(f"  {length:6.3f} s at t={at:5.2f} s  {start} -> {end}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
