"""Principal components of row vectors: one implementation for PCA initialisation, latent
directions, latent visualisation and the benchmark's linear baseline."""
import torch

from . import interrupt
from .threads import one_thread

CHUNK_FLOPS = 1 << 28   # work per piece of the Gram matrix (tens of ms): a Cancel check between pieces


def principal_components(rows, k):
    """(mean [D], components [min(k, rank), D] orthonormal and ordered by variance, singular values), float64.

    Through the smaller Gram matrix (D x D, or N x N for a few long rows) and its eigenvectors, on one thread
    (threads.py), not an SVD of all the rows: on a busy 2-core machine that one uninterruptible call took 3-4 s
    of a PCA start. The Gram matrix is summed in pieces with a Cancel check between them, and its eigenvectors
    take milliseconds. Each component's largest entry is made positive, so its sign does not depend on the solver.
    """
    with one_thread():
        return _principal_components(rows, k)


def _principal_components(rows, k):
    x = rows.double()
    mean = x.mean(0)
    x = x - mean
    n, d = x.shape
    if d > n:   # a few long rows (latents): the N x N Gram matrix, then v = X^T u / s
        s, u = _eigen(x @ x.T)
        rank = int((s > s[0] * 1e-7).sum()) if n and s[0] > 0 else 0
        components = (x.T @ u[:, :min(k, rank)] / s[:min(k, rank)]).T
    else:
        gram, step = x.new_zeros(d, d), max(1, CHUNK_FLOPS // (d * d))
        for start in range(0, n, step):
            interrupt.check()
            gram.addmm_(x[start:start + step].T, x[start:start + step])
        s, v = _eigen(gram)
        components = v[:, :k].T
    peak = components.gather(1, components.abs().argmax(1, keepdim=True))
    return mean, components * torch.where(peak < 0, -1.0, 1.0).to(components), s


def _eigen(gram):
    """Singular values (descending) and the matching eigenvectors (columns) from a Gram matrix."""
    values, vectors = torch.linalg.eigh(gram)   # ascending
    return values.flip(0).clamp_min(0).sqrt(), vectors.flip(1)
