"""Small tensor work on one thread.

torch gives each op one thread per core. When other processes keep the cores busy, an op split over two
threads waits for whichever is descheduled: on a loaded 2-core machine copying a 5 MB model took 0.6 s on two
threads and 0.02 s on one, and the eigenvectors of a 192x192 matrix 0.15-3 s against 15 ms. Work that small
gains nothing from sharing, and during it Cancel cannot be checked, so it runs on one thread.
"""
import contextlib

import torch


@contextlib.contextmanager
def one_thread():
    """torch on one thread inside the block (process-wide, as torch.set_num_threads is), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
