"""Penultimate features seen in 2-D: a stratified test subset, its t-SNE embedding
(scikit-learn, seeded), and how well k-means (k = number of classes) recovers the classes,
as the V-measure (Rosenberg & Hirschberg 2007) — on the 2-D embedding, as the AMD paper's
Figure 7 reports it, and on the raw features.

scikit-learn is imported inside the functions that use it.

Usage::

    keep = stratified_indices(labels, 2000, seed=0)
    xy = tsne_2d(features[keep], seed=0)                     # [n, 2] float32
    v_measure(labels[keep], kmeans_clusters(xy, 10, seed=0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_POINTS = 2000
PERPLEXITY = 30.0


def stratified_indices(labels: Sequence[int] | np.ndarray, n: int, seed: int = 0) -> list[int]:
    """About ``n`` indices, the same number from each class (as far as a class has them; what
    a small class cannot give goes to the others), drawn with ``seed``; sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    n = min(n, len(labels))
    share = dict.fromkeys(pools, 0)
    remaining = n
    while remaining > 0:
        open_classes = [c for c in pools if share[c] < len(pools[c])]
        each = max(remaining // len(open_classes), 1)
        for c in open_classes:
            take = min(each, len(pools[c]) - share[c], remaining)
            share[c] += take
            remaining -= take
            if remaining == 0:
                break
    return sorted(int(i) for c in pools for i in pools[c][:share[c]])


def single_threaded():  # noqa: ANN201
    """One OpenMP and BLAS thread: scikit-learn's Barnes-Hut t-SNE sums its gradient in thread
    order, so its embedding (and the V-score read from it) changes with the thread count —
    one teacher's V went from 0.646 to 0.671 between 2 threads and 1 here. Pinned to one, the
    same seed gives the same numbers on any machine; on a shared CPU it was faster too."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = PERPLEXITY) -> np.ndarray:
    """t-SNE to 2-D (Barnes-Hut, PCA initialisation, scikit-learn's automatic learning rate,
    one thread); the same ``seed`` gives the same embedding. Perplexity is capped below n/3
    for small n."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}.")
    perplexity = min(perplexity, (n - 1) / 3.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    with single_threaded():
        return tsne.fit_transform(features).astype(np.float32)


def kmeans_clusters(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (k-means++, 10 restarts, seeded) cluster index of each point."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(points)))
    with single_threaded():
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(points, np.float64))


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def v_measure(labels: Sequence[int] | np.ndarray, clusters: Sequence[int] | np.ndarray,
              beta: float = 1.0) -> float:
    """Harmonic mean of homogeneity (each cluster holds one class) and completeness (each
    class lies in one cluster): 1 − H(C|K)/H(C) and 1 − H(K|C)/H(K), in [0, 1]."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if len(labels) == 0:
        return 1.0
    _, class_idx = np.unique(labels, return_inverse=True)
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    table = np.zeros((class_idx.max() + 1, cluster_idx.max() + 1))
    np.add.at(table, (class_idx, cluster_idx), 1)
    n = table.sum()
    h_c, h_k = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    nonzero = table > 0
    joint = table[nonzero] / n
    # H(C|K) = −Σ p(c,k) log(p(c,k)/p(k)); H(K|C) likewise with p(c).
    p_k = np.broadcast_to(table.sum(axis=0, keepdims=True), table.shape)[nonzero] / n
    p_c = np.broadcast_to(table.sum(axis=1, keepdims=True), table.shape)[nonzero] / n
    h_c_given_k = float(-(joint * np.log(joint / p_k)).sum())
    h_k_given_c = float(-(joint * np.log(joint / p_c)).sum())
    homogeneity = 1.0 if h_c == 0 else 1.0 - h_c_given_k / h_c
    completeness = 1.0 if h_k == 0 else 1.0 - h_k_given_c / h_k
    if homogeneity + completeness == 0:
        return 0.0
    return (1 + beta) * homogeneity * completeness / (beta * homogeneity + completeness)


@dataclass
class Embedding:
    """One model's t-SNE of the subset, with its V-scores."""

    model: str                  # "student" or "teacher"
    xy: np.ndarray              # [n, 2]
    labels: np.ndarray          # [n] true classes
    predicted: np.ndarray       # [n] the model's top-1 classes
    indices: np.ndarray         # [n] test-set indices
    v_tsne: float               # V-measure of k-means on the 2-D embedding
    v_raw: float                # ... on the raw penultimate features
    time_s: float = math.nan    # t-SNE and k-means time


def embed(model: str, features: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
          indices: np.ndarray, num_classes: int, seed: int = 0) -> Embedding:
    import time

    start = time.perf_counter()
    xy = tsne_2d(features, seed=seed)
    v_tsne = v_measure(labels, kmeans_clusters(xy, num_classes, seed))
    v_raw = v_measure(labels, kmeans_clusters(features, num_classes, seed))
    return Embedding(model, xy, np.asarray(labels), np.asarray(predicted), np.asarray(indices),
                     v_tsne, v_raw, time.perf_counter() - start)
