"""Principal components of row vectors: one implementation for PCA initialisation, latent
directions, latent visualisation and the benchmark's linear baseline."""
import torch


def principal_components(rows, k):
    """(mean [D], components [min(k, rank), D] orthonormal and ordered by variance, singular values), float64."""
    rows = rows.double()
    mean = rows.mean(0)
    _, s, vt = torch.linalg.svd(rows - mean, full_matrices=False)
    return mean, vt[:k], s
