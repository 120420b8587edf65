"""Measuring on a shared, noisy machine: interleaved repetitions, medians, same-run baselines.

Every figure runs its baseline and its candidate in turns (A, B, A, B, ...), so a neighbour's
load falls on both about equally, and reports the median of each.
"""
import resource
import statistics
import time

import torch


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(runs, reps):
    """``runs``: {name: fn() -> a rate (bigger is better) or a dict of figures}. Calls them in turns
    ``reps`` times; returns {name: median} (per key for dicts) and the raw samples."""
    samples = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            samples[name].append(fn())
    return {name: _median(s) for name, s in samples.items()}, samples


def _median(values):
    if isinstance(values[0], dict):
        return {k: statistics.median(v[k] for v in values) for k in values[0]}
    return statistics.median(values)


class StepClock:
    """Timestamps of training steps (a progress hook, or called by a plain loop): the steady rate
    skips the first step, which pays for kernel selection and warm-up."""

    def __init__(self, device, items_per_step):
        self.device, self.items, self.times = device, items_per_step, []

    def __call__(self, *_args, **_kw):
        sync(self.device)
        self.times.append(time.perf_counter())

    def rate(self):
        if len(self.times) < 2:
            raise RuntimeError("need at least two timed steps")
        return self.items * (len(self.times) - 1) / (self.times[-1] - self.times[0])


def matmul_peak(device, dtype, n=2048, seconds=1.0):
    """Achieved FLOP/s of a square matmul: the machine's practical peak for this dtype."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync(device)
    count, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        a @ b
        count += 1
        if count % 4 == 0:
            sync(device)
    sync(device)
    return 2 * n ** 3 * count / (time.perf_counter() - t)


def rss_mb():
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def peak_rss_mb():
    """This process's resident-memory high-water mark. VmHWM, not ru_maxrss: a process started by a
    big one inherits the parent's ru_maxrss across fork and exec, which would hide its own peak."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
