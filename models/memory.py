"""The memory budget: the one place that says how much a single allocation may ask for.

Nodes whose memory grows with an input (a count, a size, a number of steps) estimate the cost before
allocating and refuse beyond the budget, naming the input to lower and the largest value that fits,
instead of exhausting the machine that also runs the artist's other work. The budget is
ATELIER_MEMORY_BUDGET_MB (megabytes) when set; otherwise half of the computer's memory (4096 MB where
that cannot be read), and for work on a GPU 90% of the GPU's memory.
"""
import logging
import os

import torch

from .errors import AtelierError

log = logging.getLogger(__name__)

ENV = "ATELIER_MEMORY_BUDGET_MB"
DEFAULT_MB = 4096


class MemoryBudgetError(AtelierError):
    """An input that would need more memory than the budget; the message names the input and what fits."""


def budget_bytes(device=None):
    """The budget in bytes (read on every call, so a change to the environment takes effect at once)."""
    text = os.environ.get(ENV, "").strip()
    if text:
        try:
            mb = float(text)
            if mb > 0 and mb == mb and mb != float("inf"):
                return int(mb * 2 ** 20)
        except ValueError:
            pass
        log.warning("%s=%r is not a positive number of megabytes; using the default", ENV, text)
    if device is not None and torch.device(device).type == "cuda":
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.9)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):  # Windows
        return DEFAULT_MB * 2 ** 20


def size_text(n):
    return f"{n / 2 ** 30:.1f} GB" if n >= 2 ** 30 else f"{max(1, round(n / 2 ** 20))} MB"


FLOAT_BYTES = 4


def check(name, value, cost, lowest=1, advice="", device=None):
    """Refuse ``name=value`` when ``cost(value)`` (bytes, growing with the value) exceeds the budget (of
    ``device``); the message gives the largest value from ``lowest`` up that fits. ``advice``: what else to
    lower when nothing fits."""
    budget, need = budget_bytes(device), cost(value)
    if need <= budget:
        return value
    lo, hi = lowest - 1, value  # cost(hi) > budget; find the largest lo with cost(lo) <= budget
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
    fits = f"lower {name} to {lo} or less" if lo >= lowest else \
        f"even {name}={lowest} does not fit; {advice or 'use smaller inputs'}"
    raise MemoryBudgetError(f"{name}={value} would need about {size_text(need)} of memory, more than the budget of "
                            f"{size_text(budget)}: {fits} (or raise {ENV} if this machine has the memory)")
