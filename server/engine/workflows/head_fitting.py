"""The closed-form and the contrastive pieces of head training: learnt whitening, the
principal directions it keeps, and the supervised contrastive loss."""

from __future__ import annotations

from typing import Any

import numpy as np

SPAN_TOLERANCE = 1e-8
"""A principal direction whose singular value is below this share of the largest is
not spanned by the data (rounding error only), so it is not used."""


def fit_whitening(vectors: np.ndarray, labels: np.ndarray, dim: int, shrinkage: float) -> Any:
    """Learnt whitening as one ``nn.Linear``: x -> (x - mean) @ W @ R.

    W whitens the within-class scatter (each vector minus its class mean), with
    ``shrinkage`` times the mean eigenvalue added to every eigenvalue so that directions
    the views hardly vary in are not amplified without bound; R holds the ``dim``
    principal directions of the whitened class means. With fewer classes than that,
    the whitened vectors' own principal directions beyond the class means' follow (as
    PCA keeps distances best), so the output has ``dim`` directions unless the vectors
    span fewer. Every direction is a principal one, fixed by the data: a basis of a
    subspace with no preferred directions would change with the last bit of the input
    (and the BLAS that computed it). Computed in float64.
    """
    import torch
    from torch import nn

    x = np.asarray(vectors, np.float64)
    classes, inverse = np.unique(labels, return_inverse=True)
    means = np.zeros((len(classes), x.shape[1]))
    np.add.at(means, inverse, x)
    means /= np.bincount(inverse)[:, None]
    within = x - means[inverse]
    values, vecs = np.linalg.eigh(within.T @ within / len(x))
    values = np.maximum(values, 0.0)
    whiten = (vecs / np.sqrt(values + shrinkage * values.mean())) @ vecs.T
    centre = x.mean(axis=0)
    out = min(dim, x.shape[1])
    if out == x.shape[1]:  # no reduction: a rotation would not change any cosine
        transform = whiten
    else:
        directions = _principal_directions((means - centre) @ whiten, out)
        if len(directions) < out:
            whitened = (x - centre) @ whiten
            rest = whitened - (whitened @ directions.T) @ directions
            directions = np.vstack([directions, _principal_directions(rest, out - len(directions))])
        transform = whiten @ directions.T
    module = nn.Linear(x.shape[1], transform.shape[1])
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(transform.T.astype(np.float32)))
        module.bias.copy_(torch.from_numpy((-centre @ transform).astype(np.float32)))
    return module.eval()


def _principal_directions(rows: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` principal directions of ``rows`` (as rows, largest variance
    first), leaving out those the rows do not span."""
    _, sv, directions = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
    spanned = sv > (sv[0] if len(sv) else 0.0) * SPAN_TOLERANCE
    return directions[spanned][:count]


def supcon(z: Any, y: Any, temperature: float) -> Any:
    """Supervised contrastive loss (Khosla et al. 2020) of L2-normalised ``z``."""
    import torch

    sim = z @ z.T / temperature
    eye = torch.eye(len(y), dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    positive = (y[:, None] == y[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    return -((log_prob * positive).sum(1) / positive.sum(1).clamp(min=1)).mean()


def nearest_mean(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray
) -> tuple[float, float]:
    """Top-1 and median margin of ``test`` against each class's mean training vector."""
    n = int(max(train_y.max(), test_y.max())) + 1
    means = np.zeros((n, train.shape[1]), np.float32)
    np.add.at(means, train_y, train)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    sims = test @ means.T
    right = sims[np.arange(len(test)), test_y]
    sims[np.arange(len(test)), test_y] = -np.inf
    wrong = sims.max(axis=1)
    return float((right > wrong).mean()), float(np.median(right - wrong))
