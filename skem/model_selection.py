"""Choosing the number of components at scale: BIC over a range of K, cross-validation on a subsample.

Trying K = 1..8 on 10^6 cells costs eight fits whatever is done; what
:func:`select_n_components` saves is the rest:

* **BIC (and AIC) without a pass per K.** Each candidate is fitted on all
  rows; the log-likelihoods of all fitted candidates are then computed in
  *one* pass over the data -- for a dask array, one ``dask.compute`` in which
  every block is read once and scored by every candidate -- instead of one
  ``bic(X)`` pass per K.
* **One read from disk for all the fits**, for a dask array that fits in the
  cluster's memory: ``persist=True`` reads its blocks once and keeps them on
  the workers for all candidates (and the scoring pass), then releases them.
* **Cross-validation on a subsample.** The held-out log-likelihood per row
  is estimated by k-fold cross-validation on ``subsample`` rows drawn
  uniformly (from a dask array: one pass, only the drawn rows reach the
  driver), so its cost does not grow with the data. The (K, fold) fits are
  independent: they run through joblib (``n_jobs``; on a cluster under
  ``joblib.parallel_config(backend="dask")``).

Every candidate is fitted from its own starts (the estimator's ``n_init``
and ``init_params``), not warm-started from the fit with one component
fewer: such a start saves passes but ties each candidate to the previous
one's optimum, and the choice of K to the order in which they are tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold
from sklearn.utils import check_random_state

from ._dask import dask_row_blocks, import_dask, is_dask_array
from ._rows import stack_rows

__all__ = ["NComponentsSelection", "select_n_components", "subsample_rows"]

#: The criteria, and whether a lower value is better.
CRITERIA = {"bic": True, "aic": True, "cv": False}


@dataclass(frozen=True)
class NComponentsSelection:
    """The outcome of :func:`select_n_components`.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per candidate, indexed by ``n_components``. With BIC or AIC:
        ``n_parameters``, ``log_likelihood`` (weighted mean per row, on all
        rows), ``bic`` and/or ``aic``, ``n_iter``, ``converged``. With CV:
        ``cv_log_likelihood`` (mean held-out log-likelihood per row over the
        folds) and ``cv_log_likelihood_sd`` (its standard deviation over the folds).
    n_components : int
        The chosen number of components: lowest BIC/AIC or highest CV score.
    criterion : str
        The criterion that chose it.
    estimator : estimator or None
        The candidate with ``n_components`` fitted on all rows (refitted when
        only CV was computed and ``refit=True``; None when ``refit=False``).
    description : str
        What was done, in a sentence or two (for logs and command output).
    """

    scores: pd.DataFrame
    n_components: int
    criterion: str
    estimator: BaseEstimator | None
    description: str


def select_n_components(estimator, X, n_components, *, criterion="bic", sample_weight=None,
                        fit_params=None, cv=5, subsample=20_000, persist=False, refit=True,
                        n_jobs=None, random_state=None):
    """Choose the number of components of a mixture by BIC, AIC or cross-validated log-likelihood.

    Parameters
    ----------
    estimator : estimator with an ``n_components`` parameter
        The model settings (dispersion, size factors, ``n_init``...); cloned
        for every candidate.
    X : array-like, scipy.sparse matrix or dask array of shape (n_samples, n_features)
        The data. BIC and AIC fit every candidate on all rows (a dask array:
        block by block, where the blocks are); CV works on a subsample in memory.
    n_components : iterable of int
        The candidates, e.g. ``range(1, 9)``.
    criterion : {"bic", "aic", "cv"} or list of them, default="bic"
        The criteria to compute; the first one chooses. ``"cv"`` is the mean
        held-out log-likelihood per row (higher is better).
    sample_weight : array-like of shape (n_samples,), default=None
        Row multiplicities (a dask array for dask ``X``). BIC's ``n`` is their sum.
    fit_params : dict of str to array-like of shape (n_samples,), default=None
        Per-row arrays given to ``fit`` and ``score_samples`` as keywords
        (NegBinMixture's explicit ``size_factors``), sliced with the rows
        for the subsample and the folds. In-memory ``X`` only.
    cv : int, default=5
        Folds of the cross-validation (shuffled, with ``random_state``).
    subsample : int or None, default=20000
        Rows drawn uniformly without replacement for the cross-validation;
        None (or at least ``n_samples``) uses all rows.
    persist : bool, default=False
        For dask ``X``: keep its blocks in the cluster's memory (``X.persist()``)
        for all the fits, so they are read from disk once; only when they fit there.
    refit : bool, default=True
        When only CV was computed: fit the chosen candidate on all rows.
    n_jobs : int, default=None
        joblib workers for the CV fits and the BIC fits of in-memory ``X``
        (the fits of dask ``X`` run one after the other, each on the cluster).
    random_state : int, RandomState or None, default=None
        Draws the subsample and the folds (each candidate keeps the
        estimator's own ``random_state`` for its starts).

    Returns
    -------
    NComponentsSelection
        The table of scores, the chosen ``n_components`` and its fitted estimator.

    Raises
    ------
    ValueError
        For an unknown criterion, no or invalid candidates, ``cv < 2``, or
        ``fit_params`` with dask ``X``.

    Examples
    --------
    >>> from skem import NegBinMixture
    >>> from skem.datasets import make_negbin_mixture
    >>> from skem.model_selection import select_n_components
    >>> X, _ = make_negbin_mixture(600, weights=(0.5, 0.5), means=((2, 10), (12, 1)),
    ...                            dispersion=0.2, random_state=0)
    >>> selection = select_n_components(NegBinMixture(random_state=0), X, range(1, 4),
    ...                                 criterion=["bic", "cv"], cv=3, random_state=0)
    >>> selection.n_components
    2
    >>> list(selection.scores.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['n_parameters', 'log_likelihood', 'bic', 'n_iter', 'converged',
     'cv_log_likelihood', 'cv_log_likelihood_sd']
    """
    criteria = [criterion] if isinstance(criterion, str) else list(criterion)
    unknown = [name for name in criteria if name not in CRITERIA]
    if not criteria or unknown:
        raise ValueError(f"criterion must be 'bic', 'aic', 'cv' or a list of them, got {criterion!r}.")
    ks = [int(k) for k in n_components]
    if not ks or any(not isinstance(k, Integral) or k < 1 for k in n_components):
        raise ValueError(f"n_components must be integers >= 1, got {list(n_components)!r}.")
    if not (isinstance(cv, Integral) and cv >= 2):
        raise ValueError(f"cv must be an integer >= 2, got {cv!r}.")
    on_dask = is_dask_array(X)
    fit_params = dict(fit_params or {})
    if on_dask and fit_params:
        raise ValueError("fit_params (per-row arrays) cannot be given with dask X.")
    rng = check_random_state(random_state)
    n_rows = int(X.shape[0])
    tables, notes = [], []
    fitted = {}

    on_all_rows = [name for name in criteria if name != "cv"]
    if on_all_rows:
        data = X
        if on_dask and persist:
            data = dask_row_blocks(X).persist()
        fitted, table, n = _fit_on_all_rows(estimator, data, ks, sample_weight, fit_params, n_jobs)
        for name in on_all_rows:
            penalty = np.log(n) if name == "bic" else 2.0
            table.insert(2 + on_all_rows.index(name), name,
                         -2.0 * table["log_likelihood"] * n + table["n_parameters"] * penalty)
        tables.append(table)
        notes.append(
            f"{'/'.join(name.upper() for name in on_all_rows)} of {len(ks)} fits on all "
            f"{n_rows} rows{' (dask blocks' + (', persisted' if persist else '') + ')' if on_dask else ''}, "
            f"their log-likelihoods in one pass"
        )
        del data  # a persisted copy is released with its last reference
    if "cv" in criteria:
        rows = subsample_rows(X, subsample, random_state=rng, sample_weight=sample_weight,
                              fit_params=fit_params)
        table = _cross_validate(estimator, rows, ks, cv, n_jobs, rng)
        tables.append(table)
        n_used = rows[0].shape[0]
        notes.append(f"CV log-likelihood per row, {cv} folds on "
                     + (f"all {n_used} rows" if n_used == n_rows else
                        f"a uniform subsample of {n_used} of {n_rows} rows"))

    scores = pd.concat(tables, axis=1)
    scores.index.name = "n_components"
    chooser = criteria[0]
    column = "cv_log_likelihood" if chooser == "cv" else chooser
    best = int(scores[column].idxmin() if CRITERIA[chooser] else scores[column].idxmax())
    model = fitted.get(best)
    if model is None and refit:
        model = clone(estimator).set_params(n_components=best).fit(
            X, sample_weight=sample_weight, **fit_params)
        notes.append(f"refitted n_components={best} on all rows")
    description = "; ".join(notes) + f". Chosen by {chooser.upper()}: n_components={best}."
    return NComponentsSelection(scores, best, chooser, model, description)


def _fit_on_all_rows(estimator, X, ks, sample_weight, fit_params, n_jobs):
    """Every candidate fitted on all rows, a table of their fits and log-likelihoods per
    unit of weight, and the total weight."""
    candidates = [clone(estimator).set_params(n_components=k) for k in ks]
    if is_dask_array(X):
        # Each fit's passes are parallel on the cluster already.
        models = [model.fit(X, sample_weight=sample_weight) for model in candidates]
    else:
        models = Parallel(n_jobs=n_jobs)(
            delayed(_fit)(model, X, sample_weight, fit_params) for model in candidates
        )
    loglik, n = _total_log_likelihoods(models, X, sample_weight, fit_params)
    table = pd.DataFrame(
        {
            "n_parameters": [model.n_parameters() for model in models],
            "log_likelihood": loglik / n,
            "n_iter": [model.n_iter_ for model in models],
            "converged": [model.converged_ for model in models],
        },
        index=pd.Index(ks, name="n_components"),
    )
    return dict(zip(ks, models)), table, n


def _fit(model, X, sample_weight, fit_params):
    return model.fit(X, sample_weight=sample_weight, **fit_params)


def _total_log_likelihoods(models, X, sample_weight, fit_params):
    """``sum_i w_i log p(x_i)`` of every model, and ``sum_i w_i``: one pass over ``X``."""
    if not is_dask_array(X):
        weights = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        totals = [weights @ model.score_samples(X, **fit_params) for model in models]
        return np.asarray(totals), float(weights.sum())
    dask = import_dask("Scoring a dask array")
    import dask.array as da

    per_row = [model.score_samples(X) for model in models]  # lazy, the same blocks of X
    if sample_weight is None:
        weights = da.ones(X.shape[0], chunks=per_row[0].chunks)
    else:
        weights = da.asarray(sample_weight).astype(float).rechunk(per_row[0].chunks)
    # One compute: the graph reads each block of X once for all the models.
    *totals, weight_sum = dask.compute(*[(values * weights).sum() for values in per_row],
                                       weights.sum())
    return np.asarray(totals, dtype=float), float(weight_sum)


def subsample_rows(X, n_rows, *, random_state=None, sample_weight=None, fit_params=None):
    """Rows drawn uniformly without replacement, in memory, with their weights and per-row arrays.

    Parameters
    ----------
    X : array-like, scipy.sparse matrix, DataFrame or dask array of shape (n_samples, n_features)
        The data. From a dask array, only the drawn rows are computed (one
        pass over the blocks that hold any) and stacked on the driver.
    n_rows : int or None
        Rows to draw; None, or at least ``n_samples``, keeps all rows (in order).
    random_state : int, RandomState or None, default=None
        Draws the rows.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights (a NumPy or dask array).
    fit_params : dict of str to array-like of shape (n_samples,), default=None
        Per-row arrays drawn with the rows.

    Returns
    -------
    X_sub : ndarray, scipy.sparse matrix or DataFrame
        The drawn rows, in their order in ``X``.
    sample_weight_sub : ndarray or None
        Their weights (None when ``sample_weight`` is None).
    fit_params_sub : dict of str to ndarray
        Their per-row arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from skem.model_selection import subsample_rows
    >>> X_sub, _, _ = subsample_rows(np.arange(20).reshape(10, 2), 3, random_state=0)
    >>> X_sub.shape
    (3, 2)
    """
    n_total = int(X.shape[0])
    rng = check_random_state(random_state)
    if n_rows is None or n_rows >= n_total:
        rows = np.arange(n_total)
    else:
        rows = np.sort(rng.choice(n_total, int(n_rows), replace=False))
    if is_dask_array(X):
        X_sub = _take_dask_rows(dask_row_blocks(X), rows)
    elif hasattr(X, "iloc"):
        X_sub = X.iloc[rows]
    else:
        X_sub = X[rows]
    weights = None
    if sample_weight is not None:
        weights = sample_weight[rows]
        weights = np.asarray(weights.compute() if is_dask_array(weights) else weights, dtype=float)
    params = {name: np.asarray(values)[rows] for name, values in (fit_params or {}).items()}
    return X_sub, weights, params


def _take_dask_rows(X, rows):
    """The given (sorted) rows of dask ``X``, computed block by block and stacked."""
    dask = import_dask("Subsampling a dask array")
    bounds = np.concatenate([[0], np.cumsum(X.chunks[0])])
    blocks = X.to_delayed().ravel()
    pieces = []
    for index, block in enumerate(blocks):
        inside = rows[(rows >= bounds[index]) & (rows < bounds[index + 1])] - bounds[index]
        if inside.size:
            pieces.append(dask.delayed(_rows_of)(block, inside))
    return stack_rows(list(dask.compute(pieces)[0]))


def _rows_of(block, rows):
    return block[rows]


def _cross_validate(estimator, data, ks, cv, n_jobs, rng):
    """Mean and standard deviation over ``cv`` folds of the held-out log-likelihood per row."""
    X, weights, fit_params = data
    folds = list(KFold(cv, shuffle=True, random_state=rng.randint(np.iinfo(np.int32).max))
                 .split(np.empty((X.shape[0], 0))))
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_held_out_score)(clone(estimator).set_params(n_components=k), X, weights,
                                 fit_params, train, test)
        for k in ks for train, test in folds
    )
    scores = np.asarray(scores).reshape(len(ks), cv)
    return pd.DataFrame(
        {"cv_log_likelihood": scores.mean(axis=1), "cv_log_likelihood_sd": scores.std(axis=1)},
        index=pd.Index(ks, name="n_components"),
    )


def _held_out_score(model, X, weights, fit_params, train, test):
    """Weighted mean log-likelihood per row of the ``test`` rows under a fit of the ``train`` rows."""
    def rows(index):
        return X.iloc[index] if hasattr(X, "iloc") else X[index]

    model.fit(rows(train), sample_weight=None if weights is None else weights[train],
              **{name: values[train] for name, values in fit_params.items()})
    held_out = model.score_samples(rows(test), **{name: values[test] for name, values in fit_params.items()})
    return float(np.average(held_out, weights=None if weights is None else weights[test]))
