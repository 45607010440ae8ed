"""The negative-binomial mixture's default start: k-means on depth-aware principal components.

k-means on ``log1p`` of raw counts clusters rows by their depth (a row read
10x deeper has every count about 10x larger), so EM started there ends at a
local optimum where components split depths, not types. The start here sees
the rows as the model with size factors does:

1. **Residuals.** Under one pooled component with the fit's size factors
   ``s_i`` (library or explicit), row ``i`` has means ``s_i g_d`` with
   ``g_d = sum_i w_i x_id / sum_i w_i s_i``. The start clusters the Poisson
   Pearson residuals ``r_id = (x_id - s_i g_d) / sqrt(s_i g_d)`` (Lause,
   Berens & Kobak 2021, "analytic Pearson residuals"), clipped above at
   ``sqrt(n)``: the depth is in the expected value, so it does not drive
   the start, and each gene counts by its signal over its Poisson noise.
   On simulated single-cell counts (5 000 cells, 10 types, depth 10x)
   k-means on their principal components agrees with the types at an
   adjusted Rand index of 0.51-0.93, against 0.24-0.76 for ``log1p`` of
   depth-normalized counts and 0.15-0.23 for scanpy's ``log1p`` of counts
   per 10 000.
2. **Project** onto the top :data:`N_PCS` principal components of the
   weighted sample (a weight is a row multiplicity). The residuals are a
   sparse matrix minus a rank-one one, ``P - sqrt(s) sqrt(g)^T``, so the
   centred matrix is applied as a linear operator (ARPACK) and sparse
   counts are never densified.
3. **Cluster** the sample's components with k-means (:data:`KMEANS_N_INIT`
   seeds, weighted) into :data:`OVERCLUSTER` times K groups, and **merge**
   them to K (:func:`merge_clusters`), greedily, the pair whose union loses
   the least Poisson log-likelihood under the size factors. k-means into K
   clusters splits large types and merges rare ones (its objective pays for
   a cluster's spread, not for its count); into 3K, a rare type gets a
   cluster of its own, and the pieces of a large type, which share their
   means, cost nothing to merge. On types in proportions 1:20 this took the
   start from an adjusted Rand index of 0.77-0.86 to 0.99-1.0 against the
   types, and EM from it to the true-label start's optimum (from 0.6-1.1
   nats per cell below it). Every row then gets the merged label of its
   nearest centre, chunk by chunk, so all rows cost one chunk's memory.

With at most :data:`N_PCS` features (or rows) there is nothing to reduce,
and the start clusters ``log1p`` of the counts at an average depth
(``x_id * mean(s) / s_i``) instead: in few dimensions the components may
differ in mean by orders of magnitude (2, 20 and 120 in one feature), and
the residuals, linear in the counts, would make k-means split the widest
component; in many dimensions of low counts the residuals separate the
types far better.

Without size factors the model has no depth term: a row's total is part of
what the components must explain (two groups may differ only in scale), so
the start keeps it (``s_i = 1``) rather than normalizing depth away.

The functions are pure: arrays in, arrays out. The fitted feature map is a
small frozen :class:`StartProjection` or :class:`LogCounts` that the chunks are mapped through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds
from scipy.special import xlogy
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin
from threadpoolctl import threadpool_limits

__all__ = [
    "KMEANS_N_INIT",
    "N_PCS",
    "OVERCLUSTER",
    "LogCounts",
    "StartProjection",
    "fit_start_features",
    "merge_clusters",
    "projected_kmeans_labels",
    "residual_parts",
]

#: Principal components the start clusters in (with fewer features: the features themselves).
N_PCS = 30
#: k-means clusters the sample into this many times K groups before they are merged to K.
OVERCLUSTER = 3
#: k-means seeds on the components (cheap: at most INIT_SAMPLE rows x N_PCS columns). Many:
#: on 3 000 cells of 10 balanced types, 16 of 20 single k-means++ seeds ended in a partition
#: that merges two types (inertia 1-12 % above the best), so 10 seeds missed the best one for
#: some random states and EM, started there, kept the merge (1.3 nats per cell lower).
KMEANS_N_INIT = 30


@dataclass(frozen=True)
class LogCounts:
    """The start's features for few features: ``log1p(x_id * scale / s_i)``.

    Attributes
    ----------
    scale : float
        The sample's weighted mean size factor (1 without size factors).
    """

    scale: float

    def transform(self, X, size_factors):
        """``log1p`` of rows ``X`` at the average depth (dense, (n, D)); a row with ``s_i = 0`` is 0."""
        X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        if size_factors is None:
            return np.log1p(X)
        s = np.asarray(size_factors, dtype=np.float64)
        factor = np.divide(self.scale, s, out=np.zeros_like(s), where=s > 0)
        return np.log1p(X * factor[:, None])


@dataclass(frozen=True)
class StartProjection:
    """The pooled gene means and principal axes of the residuals, fitted on the start's sample.

    The residuals of rows ``X`` with size factors ``s`` are ``P - L R^T``:
    ``P_id = min(x_id / sqrt(s_i g_d), clip + sqrt(s_i g_d))`` at the
    non-zero entries (sparse), ``L = [sqrt(s), 1]`` and ``R = [sqrt(g),
    mean]`` (the rank-one expected part and the centring).

    Attributes
    ----------
    root_means : ndarray of shape (D,)
        ``sqrt(g_d)``, the square roots of the pooled gene means.
    clip : float
        Upper bound of a residual (``sqrt`` of the sample's total weight).
    axes : ndarray of shape (D, q)
        Principal axes.
    offsets : ndarray of shape (2, q)
        ``R^T axes``: the projections of ``sqrt(g)`` and of the residuals' mean.
    """

    root_means: np.ndarray
    clip: float
    axes: np.ndarray
    offsets: np.ndarray

    def transform(self, X, size_factors):
        """Coordinates of rows ``X`` (with their size factors, None: all 1) on the axes, (n, q)."""
        sparse_part, root_s = residual_parts(X, size_factors, self.root_means, self.clip)
        left = np.column_stack([root_s, np.ones_like(root_s)])
        return np.asarray(sparse_part @ self.axes) - left @ self.offsets


def residual_parts(X, size_factors, root_means, clip):
    """The sparse part of the clipped Pearson residuals and ``sqrt(s)``.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n, D)
        Counts.
    size_factors : ndarray of shape (n,) or None
        ``s_i >= 0`` (None: all 1).
    root_means : ndarray of shape (D,)
        ``sqrt(g_d)``; a feature with ``g_d = 0`` (no count in the sample) is ignored.
    clip : float
        Upper bound of a residual.

    Returns
    -------
    sparse_part : CSR matrix of shape (n, D)
        ``min(x_id / sqrt(s_i g_d), clip + sqrt(s_i g_d))`` at the non-zero
        entries; the residuals are ``sparse_part - outer(root_s, root_means)``.
    root_s : ndarray of shape (n,)
        ``sqrt(s_i)``.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[0]
    root_s = np.ones(n) if size_factors is None else np.sqrt(np.asarray(size_factors, dtype=np.float64))
    rows = np.repeat(np.arange(n), np.diff(X.indptr))
    # sqrt(s g) at each entry; 0 for an all-zero row (s = 0) or a feature unseen in the sample.
    root_mean = root_s[rows] * root_means[X.indices]
    values = np.divide(X.data, root_mean, out=np.zeros_like(X.data), where=root_mean > 0)
    values = np.minimum(values, clip + root_mean)
    return sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape), root_s


def fit_start_features(X, size_factors, weights, n_pcs, random_state):
    """The start's feature map, fitted on its sample: residuals' components, or log counts.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n, D)
        The sample's counts.
    size_factors : ndarray of shape (n,) or None
        Their size factors (None: all 1).
    weights : ndarray of shape (n,)
        Row multiplicities.
    n_pcs : int
        Principal components to keep. With ``min(n, D) <= n_pcs`` there is
        nothing to reduce: the features are :class:`LogCounts`.
    random_state : RandomState
        Seeds ARPACK's starting vector.

    Returns
    -------
    StartProjection or LogCounts
        Either maps rows ``X`` with their size factors to features by ``transform(X, size_factors)``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    total_weight = weights.sum()
    size_weight = total_weight if size_factors is None else weights @ size_factors
    if min(X.shape) <= n_pcs:
        return LogCounts(size_weight / total_weight)
    root_means = np.sqrt(np.asarray(weights @ X).reshape(-1) / size_weight)
    clip = np.sqrt(total_weight)
    sparse_part, root_s = residual_parts(X, size_factors, root_means, clip)
    mean = np.asarray(weights @ sparse_part).reshape(-1) / total_weight - (
        weights @ root_s / total_weight) * root_means
    left = np.column_stack([root_s, np.ones_like(root_s)])
    right = np.column_stack([root_means, mean])
    axes = _principal_axes(sparse_part, left, right, np.sqrt(weights), n_pcs, random_state)
    return StartProjection(root_means, clip, axes, right.T @ axes)


def _principal_axes(sparse_part, left, right, root_weights, n_pcs, random_state):
    """Top right singular vectors of ``diag(root_weights) (sparse_part - left right^T)``."""

    def matmat(V):
        return root_weights[:, None] * (np.asarray(sparse_part @ V) - left @ (right.T @ V))

    def rmatmat(U):
        weighted = root_weights[:, None] * U
        return np.asarray(sparse_part.T @ weighted) - right @ (left.T @ weighted)

    operator = LinearOperator(
        sparse_part.shape, dtype=np.float64,
        matvec=lambda v: matmat(v.reshape(-1, 1)).ravel(),
        rmatvec=lambda u: rmatmat(u.reshape(-1, 1)).ravel(),
        matmat=matmat, rmatmat=rmatmat,
    )
    # ARPACK's start vector from the fit's random state: the same seed gives the same axes.
    v0 = random_state.uniform(-1.0, 1.0, size=min(sparse_part.shape))
    _, _, axes = svds(operator, k=n_pcs, v0=v0)
    return axes.T


def merge_clusters(X, size_factors, weights, labels, n_clusters):
    """Merge clusters to ``n_clusters``, each time the pair whose union loses the least
    log-likelihood (Poisson, scaled for over-dispersion): a map from the given labels to
    merged ones.

    A cluster ``c`` of rows with weights ``w_i`` and size factors ``s_i`` fitted
    by Poisson means ``mu_d = S_cd / T_c`` (``S_cd = sum w x_id``, ``T_c =
    sum w s_i``) has log-likelihood ``sum_d S_cd log(S_cd / T_c) - S_cd`` plus
    terms that do not depend on the clustering, so merging ``a`` and ``b``
    costs ``L(a) + L(b) - L(a + b) >= 0`` per feature: about 0 for two pieces of
    one type. Counts vary more than Poisson, by ``1 + phi_d mu`` for a negative
    binomial, which would make splits of highly expressed, noisy features look
    costly to merge; so each feature's cost is divided by ``1 + phi_d mu_d`` at the
    union's mean (the quasi-likelihood), with ``phi_d`` the features' method-of-moments
    dispersion within the clusters.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n, D)
        Counts.
    size_factors : ndarray of shape (n,) or None
        Their size factors (None: all 1).
    weights : ndarray of shape (n,)
        Row multiplicities.
    labels : ndarray of int of shape (n,)
        Clusters ``0 .. m - 1``.
    n_clusters : int
        Clusters to keep (at most ``m``).

    Returns
    -------
    mapping : ndarray of int of shape (m,)
        The merged cluster, ``0 .. n_clusters - 1``, of each given one, numbered in
        lexicographic order of their Poisson means.
    """
    n_given = int(labels.max()) + 1
    size_factors = np.ones(len(labels)) if size_factors is None else size_factors
    membership = np.zeros((len(labels), n_given))
    membership[np.arange(len(labels)), labels] = weights
    sums = np.asarray(X.T @ membership, dtype=np.float64).T
    sizes = size_factors @ membership
    phi = _moment_dispersion(X, size_factors, membership, sums, sizes)

    def log_likelihood(count_sums, size_sum):
        return xlogy(count_sums, count_sums) - xlogy(count_sums, size_sum)

    own = log_likelihood(sums, sizes[:, None])

    def merge_costs(a):
        union_sums, union_sizes = sums[a] + sums, (sizes[a] + sizes)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 + phi * np.where(union_sizes > 0, union_sums / union_sizes, 0.0)
        return ((own[a] + own - log_likelihood(union_sums, union_sizes)) / scale).sum(axis=1)

    cost = np.stack([merge_costs(a) for a in range(n_given)])
    alive = np.ones(n_given, dtype=bool)
    groups = np.arange(n_given)
    for _ in range(n_given - n_clusters):
        cost[~alive] = cost[:, ~alive] = np.inf
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(np.argmin(cost), cost.shape)
        # b joins a: a's costs against the others are recomputed, b retires.
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        own[a] = log_likelihood(sums[a], sizes[a])
        groups[groups == b] = a
        alive[b] = False
        cost[a] = cost[:, a] = merge_costs(a)
    # Merged clusters numbered by their Poisson means, in lexicographic order of the
    # features, so that the numbering depends on neither k-means' nor the rows' order
    # (which differ between dense and sparse input of the same counts).
    survivors = np.flatnonzero(alive)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums[survivors] / sizes[survivors, None]
    number = np.empty(n_given, dtype=np.intp)
    number[survivors[np.lexsort(means.T[::-1])]] = np.arange(survivors.size)
    return number[groups]


def _moment_dispersion(X, size_factors, membership, sums, sizes):
    """Each feature's dispersion ``phi_d >= 0`` by moments within the clusters of
    ``membership`` (n, m; the rows' weights): ``sum (x - s mu)**2 - x`` over
    ``sum (s mu)**2``, with the clusters' Poisson means ``mu``."""
    squares = X.multiply(X) if sp.issparse(X) else np.square(X)
    square_sums = np.asarray(squares.T @ membership, dtype=np.float64).T
    cross = np.asarray(X.T @ (membership * size_factors[:, None]), dtype=np.float64).T
    size_squares = np.square(size_factors) @ membership
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(sizes[:, None] > 0, sums / sizes[:, None], 0.0)
    excess = (square_sums - 2 * mu * cross + mu**2 * size_squares[:, None] - sums).sum(axis=0)
    expected = (mu**2 * size_squares[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, np.maximum(excess / expected, 0.0), 0.0)


def projected_kmeans_labels(sample, chunks, n_clusters, random_state):
    """Labels of all rows from the sample's start features (:func:`fit_start_features`):
    k-means into :data:`OVERCLUSTER` times ``n_clusters`` groups, merged to ``n_clusters``
    (:func:`merge_clusters`).

    Parameters
    ----------
    sample : tuple (X, size_factors, weights)
        The rows the projection and k-means are fitted on (at most
        :data:`skem._mixture.INIT_SAMPLE`), their size factors (None: none) and weights.
    chunks : iterable of tuples (X, size_factors)
        All rows, a chunk at a time, in order.
    n_clusters : int
        Number of clusters K (at most the sample's rows).
    random_state : RandomState
        Seeds the principal axes and k-means.

    Returns
    -------
    labels : ndarray of int of shape (n_rows,)
        The merged cluster of each row's nearest k-means centre, rows of ``chunks`` in order.
    """
    X, size_factors, weights = sample
    feature_map = fit_start_features(X, size_factors, weights, N_PCS, random_state)
    n_fine = min(OVERCLUSTER * n_clusters, X.shape[0])
    kmeans = KMeans(n_clusters=n_fine, n_init=KMEANS_N_INIT, random_state=random_state)
    # One OpenMP thread: k-means on at most INIT_SAMPLE x N_PCS values takes a fraction of a
    # second, and parallelism comes from n_jobs; on a busy machine (load 12 per core) its
    # default threads made it 60x slower (0.1 s against 7-11 s on 400 rows).
    with threadpool_limits(limits=1, user_api="openmp"):
        kmeans.fit(feature_map.transform(X, size_factors), sample_weight=weights)
    # k-means may leave a cluster without rows (identical rows): merging needs labels 0..m-1.
    used, fine_labels = np.unique(kmeans.labels_, return_inverse=True)
    mapping = merge_clusters(X, size_factors, weights, fine_labels, min(n_clusters, used.size))
    centers = kmeans.cluster_centers_[used]
    return np.concatenate([
        mapping[pairwise_distances_argmin(feature_map.transform(X_chunk, s_chunk), centers)]
        for X_chunk, s_chunk in chunks
    ])
