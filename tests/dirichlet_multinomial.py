"""A mixture of Dirichlet-multinomials, written on the public contract :mod:`skem.engine` alone.

Test-only (not part of skem's public API): the fourth model, and the first
whose M-step has no closed form. It shows that such a model still needs one
module -- frozen parameters with declared spaces, additive statistics, row
data, a :class:`~skem.engine.MixtureModel` and a thin estimator -- and nothing
in the engine. It is registered in ``conftest.ESTIMATORS`` and is the worked
example of the user guide's engine page.

The model
---------
Row ``x_i`` holds counts of ``D`` categories with total ``n_i``; given
component ``k`` it is Dirichlet-multinomial with concentrations
``alpha_k > 0`` (``A_k = sum_d alpha_kd``)::

    p(x | alpha) = n B(A, n) / prod_{d: x_d > 0} x_d B(alpha_d, x_d)     (n > 0; 1 if n = 0)

which equals ``n! / prod x_d! * Gamma(A) / Gamma(n + A) * prod Gamma(x_d + alpha_d) /
Gamma(alpha_d)`` but is computed through ``betaln``, which keeps its digits when
``alpha`` is large (``lgamma(x + alpha) - lgamma(alpha)`` loses them). Zero
entries contribute nothing.

Statistics and M-step
---------------------
Every term of the log-pmf depends on a row only through its non-zero
(feature, value) pairs and its total. So the statistics of component ``k``
are the weighted histograms ``H[k, j] = sum_i w_i q_ik [x_{i,d_j} = u_j]`` over
the data set's distinct non-zero pairs ``(d_j, u_j)`` and
``Hn[k, m] = sum_i w_i q_ik [n_i = t_m]`` over its distinct non-zero totals:
additive over chunks, of a size bounded by the distinct values (counts are
bounded), and they make the expected complete log-likelihood of ``alpha_k``
exact without revisiting rows::

    Q_k(alpha) = sum_m Hn[k, m] betaln(A, t_m) - sum_j H[k, j] betaln(alpha_{d_j}, u_j) + const.

The M-step maximizes it by Minka's fixed point (T. Minka, *Estimating a
Dirichlet distribution*, 2000/2012, section on the Polya distribution)::

    alpha_d <- alpha_d * sum_{j: d_j = d} H[j] (psi(u_j + alpha_d) - psi(alpha_d))
                       / sum_m Hn[m] (psi(t_m + A) - psi(A)),

warm-started from the current parameters, each step followed by a Newton
step on ``log A`` with the proportions held (the fixed point's slow
direction; without it, barely overdispersed data took 500 EM steps of 100
fixed-point steps each). For integer counts each fixed-point step maximizes
a lower bound of ``Q`` that touches it at the current point, so ``Q`` never
decreases; for non-integer values (scikit-learn's checks feed floats) the
bound is not guaranteed, so a step that would lower ``Q`` is refused. EM
therefore stays monotone in every case (a generalized EM when the inner
iteration stops early).

Totals are not modelled (the Dirichlet-multinomial conditions on them):
:meth:`DirichletMultinomialModel.sample_component` draws a row's total from
the weighted empirical distribution of the training totals, the same for
every component, then the proportions from the Dirichlet and the counts from
the multinomial.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.special import betaln, digamma, polygamma
from sklearn.utils.validation import check_non_negative, validate_data

from skem.engine import AdditiveStats, BaseMixture, MixtureModel, RowData, mixing_weights, param

#: Relative rounding error of Q_k below which a change of it is no change.
Q_ROUNDING = 1e-12

#: Smallest concentration: a category never seen in a component tends to 0 under the
#: fixed point; the floor keeps new rows that hold it finite.
ALPHA_FLOOR = 1e-10


@dataclass(frozen=True)
class DMParams:
    weights: np.ndarray = param("simplex")  # (K,)
    concentrations: np.ndarray = param("positive", floor=ALPHA_FLOOR)  # (K, D)


@dataclass(frozen=True)
class PairTable:
    """The distinct non-zero (feature, value) pairs and non-zero totals of a data set."""

    feature: np.ndarray  # (J,) d_j, sorted
    value: np.ndarray  # (J,) u_j
    total: np.ndarray  # (M,) t_m

    def per_feature(self, terms, n_features):
        """Sums of ``terms`` (..., J) over the pairs of each feature, shape (..., D)."""
        out = np.zeros(terms.shape[:-1] + (n_features,))
        if self.feature.size:
            present, starts = np.unique(self.feature, return_index=True)
            out[..., present] = np.add.reduceat(terms, starts, axis=-1)
        return out


@dataclass(frozen=True)
class DMStats(AdditiveStats):
    resp_sum: np.ndarray  # (K,)  sum_i w_i q_ik
    pair_hist: np.ndarray  # (K, J)  sum_i w_i q_ik [x_{i,d_j} = u_j]
    total_hist: np.ndarray  # (K, M)  sum_i w_i q_ik [n_i = t_m]
    pairs: PairTable  # the data set's table, carried along (not added)

    _shared = ("pairs",)


@dataclass(frozen=True)
class DMRows(RowData):
    """Rows as one-hot indicators into the data set's pair table.

    ``pair_rows[i, j] = 1`` when row i holds pair j, ``total_rows[i, m] = 1`` when its
    total is ``t_m``; with them both the log-pmf and the histograms are one sparse
    product, so nothing per chunk needs :meth:`MixtureModel.chunk_work`.
    """

    X: np.ndarray = None  # (n, D), for the k-means start
    pair_rows: sp.csr_matrix = None  # (n, J)
    total_rows: sp.csr_matrix = None  # (n, M)
    pairs: PairTable = None

    _shared = ("pairs",)


def pair_table(X):
    """The pair table of ``X`` and the indicators of its rows (see :class:`DMRows`)."""
    rows, features = np.nonzero(X)
    values = X[rows, features]
    # Pairs sorted by feature, then value: a canonical table that depends only on the rows.
    keys, pair_index = np.unique(np.column_stack([features, values]), axis=0, return_inverse=True)
    totals = X.sum(axis=1)
    nonzero = np.flatnonzero(totals > 0)
    total_values, total_index = np.unique(totals[nonzero], return_inverse=True)
    n = X.shape[0]
    pair_rows = sp.csr_matrix(
        (np.ones(rows.size), (rows, pair_index.reshape(-1))), shape=(n, keys.shape[0])
    )
    total_rows = sp.csr_matrix(
        (np.ones(nonzero.size), (nonzero, total_index.reshape(-1))), shape=(n, total_values.size)
    )
    table = PairTable(keys[:, 0].astype(np.intp), keys[:, 1], total_values)
    return table, pair_rows, total_rows


def expected_log_likelihood(concentrations, pair_hist, total_hist, pairs):
    """``Q_k(alpha_k)`` of each component, up to a constant, from the histograms; (K,)."""
    precision = concentrations.sum(axis=1, keepdims=True)
    return (
        (total_hist * betaln(precision, pairs.total)).sum(axis=1)
        - (pair_hist * betaln(concentrations[:, pairs.feature], pairs.value)).sum(axis=1)
    )


def minka_step(alpha, pair_hist, total_hist, pairs, n_features):
    """One step of Minka's fixed point from ``alpha`` (K, D) for components whose rows
    are not all empty (see :func:`fit_concentrations`)."""
    precision = alpha.sum(axis=1, keepdims=True)
    pair_alpha = alpha[:, pairs.feature]
    numerator = pairs.per_feature(
        pair_hist * (digamma(pairs.value + pair_alpha) - digamma(pair_alpha)), n_features
    )
    denominator = (total_hist * (digamma(pairs.total + precision) - digamma(precision))).sum(axis=1)
    return np.maximum(alpha * numerator / denominator[:, None], ALPHA_FLOOR)


def precision_step(alpha, pair_hist, total_hist, pairs):
    """One Newton step on ``log A`` with the proportions ``alpha / A`` held, (K, D).

    The fixed point is slow along the precision (Minka says as much); where
    the data are barely overdispersed the maximum is far out or at infinity
    (``Q_k ~ c - b / A``), and a Newton step in ``log A`` moves ``A`` by a
    factor ``e`` there. Where ``Q_k`` is not concave in ``log A`` the step is
    0.
    """
    precision = alpha.sum(axis=1, keepdims=True)
    mean = alpha / precision
    pair_mean, pair_alpha = mean[:, pairs.feature], alpha[:, pairs.feature]
    t = pairs.total
    # f' and f'' of Q_k(A * mean) in A.
    slope = ((total_hist * (digamma(precision) - digamma(precision + t))).sum(axis=1)
             + (pair_hist * pair_mean
                * (digamma(pair_alpha + pairs.value) - digamma(pair_alpha))).sum(axis=1))
    trigamma = partial(polygamma, 1)
    curvature = ((total_hist * (trigamma(precision) - trigamma(precision + t))).sum(axis=1)
                 + (pair_hist * pair_mean**2
                    * (trigamma(pair_alpha + pairs.value) - trigamma(pair_alpha))).sum(axis=1))
    A = precision[:, 0]
    # In tau = log A: g' = A f', g'' = A f' + A**2 f''.
    g1, g2 = A * slope, A * slope + A**2 * curvature
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(g2 < 0, -g1 / g2, 0.0)
    step = np.clip(np.nan_to_num(step), -3.0, 3.0)
    return np.maximum(alpha * np.exp(step)[:, None], ALPHA_FLOOR)


def fit_concentrations(alpha, pair_hist, total_hist, pairs, n_features, max_iter, tol):
    """Minka's fixed point for each component's concentrations, warm-started at ``alpha``.

    For integer counts each step maximizes a lower bound of ``Q_k`` that
    touches it at the current point, so it never decreases ``Q_k``. For
    non-integer values Minka's bound on ``lgamma(x + a) - lgamma(a)`` does not
    hold (it is concave in ``log a`` when ``x < 1``), yet no decrease turned
    up in 20,000 random trials (``test_dm_model`` repeats a few hundred); a
    step that would decrease ``Q_k`` is refused all the same, so every
    accepted step raises it. Each step is followed by a Newton step along the
    precision (:func:`precision_step`), kept where it raises ``Q_k`` further.
    (A full Newton step was tried: ``Q_k`` is not concave in ``alpha`` while
    components overlap, and its steps were refused there.)

    Parameters
    ----------
    alpha : ndarray of shape (K, D)
        The start (the current concentrations).
    pair_hist, total_hist : ndarray of shape (K, J), (K, M)
        The components' histograms (see :class:`DMStats`).
    pairs : PairTable
        The values the histograms count.
    n_features : int
        D.
    max_iter : int
        Steps at most.
    tol : float
        A component stops when none of its ``log alpha`` moves by more than this.

    Returns
    -------
    alpha : ndarray of shape (K, D)
        Concentrations whose ``Q_k`` is at least that of the start, for every k.
    """
    alpha = np.array(alpha, dtype=float)  # updated in place below
    q = expected_log_likelihood(alpha, pair_hist, total_hist, pairs)
    # A component whose rows are all empty (or that has none) has no information about
    # alpha: it keeps its concentrations.
    active = total_hist.sum(axis=1) > 0
    for _ in range(max_iter):
        if not active.any():
            break
        a, hist, totals = alpha[active], pair_hist[active], total_hist[active]
        proposal = minka_step(a, hist, totals, pairs, n_features)
        q_new = expected_log_likelihood(proposal, hist, totals, pairs)
        # Then along the precision, kept only where it raises Q_k further.
        scaled = precision_step(proposal, hist, totals, pairs)
        q_scaled = expected_log_likelihood(scaled, hist, totals, pairs)
        better = q_scaled > q_new
        proposal[better], q_new[better] = scaled[better], q_scaled[better]
        # A step that would lower Q_k is refused and its component stops for this M-step
        # (for non-integer values the bound gave out -- never seen, see above). Changes
        # within Q_k's rounding are accepted: refusing them would make the M-step hinge
        # on the last bits of the statistics, which depend on the chunk size.
        accepted = q_new >= q[active] - Q_ROUNDING * np.abs(q[active])
        moved = np.abs(np.log(proposal) - np.log(a)).max(axis=1) >= tol
        alpha[active] = np.where(accepted[:, None], proposal, a)
        q[active] = np.where(accepted, q_new, q[active])
        active[active] = accepted & moved
    return alpha


@dataclass(frozen=True, kw_only=True)
class DirichletMultinomialModel(MixtureModel):
    """``x_i | k ~ DirichletMultinomial(n_i, concentrations[k])``.

    Parameters
    ----------
    n_features : int
        D, the number of categories.
    totals, total_weights : ndarray of shape (T,)
        The distinct training row totals (rounded to integers) and their
        weighted frequencies: the distribution :meth:`sample_component` draws totals from.
    max_inner_iter : int, default=100
        Fixed-point steps per M-step at most (warm-started, so they add up over EM steps).
    inner_tol : float, default=1e-10
        The fixed point stops when no ``log alpha`` moves by more than this.
    """

    n_features: int
    totals: np.ndarray
    total_weights: np.ndarray
    max_inner_iter: int = 100
    inner_tol: float = 1e-10

    def prepare(self, X, weights):
        table, pair_rows, total_rows = pair_table(X)
        return DMRows(weights=weights, X=X, pair_rows=pair_rows, total_rows=total_rows, pairs=table)

    def estimate_log_prob(self, params, chunk, work):
        pairs = chunk.pairs
        alpha = params.concentrations
        precision = alpha.sum(axis=1)
        # log n + betaln(A, n) per (component, total); -(log u + betaln(alpha_d, u)) per pair.
        total_terms = np.log(pairs.total) + betaln(precision[:, None], pairs.total)
        pair_terms = np.log(pairs.value) + betaln(alpha[:, pairs.feature], pairs.value)
        return np.asarray(chunk.total_rows @ total_terms.T - chunk.pair_rows @ pair_terms.T)

    def accumulate(self, params, chunk, weighted_resp, work):
        return DMStats(
            weighted_resp.sum(axis=0),
            np.asarray(chunk.pair_rows.T @ weighted_resp).T,
            np.asarray(chunk.total_rows.T @ weighted_resp).T,
            chunk.pairs,
        )

    def m_step(self, stats, params):
        weights, occupied = mixing_weights(stats.resp_sum)
        start = self._moment_start(stats) if params is None else params.concentrations
        alpha = fit_concentrations(
            start, stats.pair_hist, stats.total_hist, stats.pairs, self.n_features,
            self.max_inner_iter, self.inner_tol,
        )
        # An empty component keeps its concentrations (at the start, its moment estimate).
        return DMParams(weights, np.where(occupied[:, None], alpha, start))

    def _moment_start(self, stats):
        """Concentrations with each component's mean proportions and precision D: where the
        first fixed point starts (and what an empty component keeps at the start)."""
        pairs = stats.pairs
        D = self.n_features

        def proportions(pair_hist, total_hist):
            count_sum = pairs.per_feature(pair_hist * pairs.value, D)
            total_sum = (total_hist * pairs.total).sum(axis=-1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                return count_sum / total_sum

        pooled = proportions(stats.pair_hist.sum(axis=0), stats.total_hist.sum(axis=0))
        pooled = np.nan_to_num(pooled, nan=1.0 / D)  # no counts at all: uniform
        own = proportions(stats.pair_hist, stats.total_hist)
        own = np.where(np.isfinite(own), own, pooled)
        return np.maximum(D * own, ALPHA_FLOOR)

    def init_features(self, data, rows):
        X = data.X[rows]
        return np.log1p(X / np.maximum(X.sum(axis=1, keepdims=True), 1.0))

    def sample_component(self, params, k, n, random_state):
        totals = random_state.choice(self.totals, size=n, p=self.total_weights)
        # Dirichlet proportions from Gamma(alpha) = Gamma(alpha + 1) * U**(1/alpha), in
        # logs: a concentration near the floor would underflow numpy's draws to 0/0.
        alpha = params.concentrations[k]
        log_u = np.log1p(-random_state.uniform(size=(n, alpha.size)))  # U in (0, 1]: no log 0
        log_g = np.log(random_state.standard_gamma(alpha + 1.0, size=log_u.shape)) + log_u / alpha
        proportions = np.exp(log_g - log_g.max(axis=1, keepdims=True))
        proportions /= proportions.sum(axis=1, keepdims=True)
        rows = [random_state.multinomial(int(m), p) for m, p in zip(totals, proportions)]
        return np.asarray(rows, dtype=float).reshape(n, alpha.size)

    def n_parameters(self, params):
        K, D = params.concentrations.shape
        return K - 1 + K * D


class DirichletMultinomialMixture(BaseMixture):
    """Mixture of Dirichlet-multinomial distributions (a test-only example estimator).

    Rows are vectors of counts over ``n_features`` categories (non-negative
    floats are accepted: the log-pmf is defined through gamma functions).

    Parameters
    ----------
    n_components : int, default=2
        Number of components.
    **em_controls
        ``n_init, init_params, max_iter, tol, accelerate, chunk_size, n_jobs,
        warm_start, random_state, verbose, verbose_interval``, as for
        :class:`skem.NegBinMixture`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing proportions.
    concentrations_ : ndarray of shape (n_components, n_features)
        Each component's Dirichlet concentrations ``alpha_k``.
    """

    def __init__(
        self, n_components=2, *, n_init=1, init_params="kmeans", max_iter=100, tol=1e-3,
        accelerate=None, chunk_size=None, n_jobs=None, warm_start=False, random_state=None,
        verbose=0, verbose_interval=10,
    ):
        super().__init__(
            n_init=n_init, init_params=init_params, max_iter=max_iter, tol=tol,
            accelerate=accelerate, chunk_size=chunk_size, n_jobs=n_jobs, warm_start=warm_start,
            random_state=random_state, verbose=verbose, verbose_interval=verbose_interval,
        )
        self.n_components = n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _validate_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1)
        check_non_negative(X, "DirichletMultinomialMixture")
        return X

    def _build_model(self, X, sample_weight):
        self._check_n_samples(X)
        totals, index = np.unique(np.rint(X.sum(axis=1)), return_inverse=True)
        total_weights = np.bincount(index.reshape(-1), weights=sample_weight, minlength=totals.size)
        return DirichletMultinomialModel(
            n_components=self.n_components, init_params=self.init_params,
            n_features=X.shape[1], totals=totals, total_weights=total_weights / total_weights.sum(),
        )

    def _get_fitted_params(self):
        return DMParams(self.weights_, self.concentrations_)

    def _set_fitted_params(self, params):
        self.weights_, self.concentrations_ = params.weights, params.concentrations
