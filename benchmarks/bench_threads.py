"""BLAS threads in EM fits: one thread (skem's default) against OpenBLAS's own choice.

Run on demand (not part of the tests), on an otherwise idle machine::

    python benchmarks/bench_threads.py              # all three estimators, all three settings
    python benchmarks/bench_threads.py --repeat 5   # more repeats (best-of)

For each estimator, a default fit on a few tens of thousands of rows is timed
with ``skem._base.BLAS_THREADS = 1`` (the default) and ``None`` (no limit:
OpenBLAS's default of one thread per core; set inside ``fit`` by a subclass, so
that it holds in joblib's workers too), in three settings:

- alone;
- beside one busy process (a CPU-bound loop in another process, as when
  another job shares the machine);
- inside ``GridSearchCV(n_jobs=2)`` over two values of a parameter, whose
  workers run fits side by side.

Printed: best-of seconds per setting and the ratio unlimited / one thread
(above 1: limiting BLAS to one thread is faster).
"""

from __future__ import annotations

import argparse
import multiprocessing
import warnings

import numpy as np
from sklearn.model_selection import GridSearchCV

from _common import print_table, timed

import skem._base
from skem import MotifMixture, NegBinMixture, TranscriptQuantifier
from skem.datasets import make_motif_windows, make_negbin_mixture, make_transcript_reads
from skem.sequences import encode_sequences


def _busy(stop):
    """A CPU-bound loop (pure Python, no BLAS) until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


class UnlimitedBLAS:
    """Fit with BLAS threads unlimited, in whichever process the fit runs (joblib workers too)."""

    def fit(self, X, y=None, **fit_params):
        skem._base.BLAS_THREADS = None
        try:
            return super().fit(X, y, **fit_params)
        finally:
            skem._base.BLAS_THREADS = 1


class NegBinUnlimited(UnlimitedBLAS, NegBinMixture):
    pass


class MotifUnlimited(UnlimitedBLAS, MotifMixture):
    pass


class TranscriptUnlimited(UnlimitedBLAS, TranscriptQuantifier):
    pass


UNLIMITED = {
    NegBinMixture: NegBinUnlimited, MotifMixture: MotifUnlimited,
    TranscriptQuantifier: TranscriptUnlimited,
}


def cases():
    rng = np.random.default_rng(0)
    counts, _ = make_negbin_mixture(
        50_000, weights=(0.5, 0.3, 0.2), means=rng.gamma(2.0, 5.0, size=(3, 40)) + 0.5,
        dispersion=0.2, random_state=0,
    )
    windows, _, _ = make_motif_windows(50_000, width=8, motif_fraction=0.05, random_state=0)
    codes = encode_sequences(windows)
    reads, class_counts, truth = make_transcript_reads(
        200_000, n_genes=300, fragment_length=100, random_state=0
    )
    return {
        "NegBinMixture": (NegBinMixture(3, random_state=0), counts, {}, "n_components", [2, 3]),
        "MotifMixture": (MotifMixture(random_state=0), codes, {}, "pseudocount", [0.1, 0.5]),
        "TranscriptQuantifier": (
            TranscriptQuantifier(lengths=truth.lengths, fragment_length=100),
            reads, {"sample_weight": class_counts}, "prior", [0.0, 0.01],
        ),
    }


def fit_alone(estimator, X, fit_params):
    return lambda: estimator.fit(X, **fit_params)


def fit_in_grid_search(estimator, X, fit_params, name, values):
    # Held-out likelihood needs every fold's rows to be fittable: plain 2-fold CV.
    search = GridSearchCV(estimator, {name: values}, cv=2, n_jobs=2)
    return lambda: search.fit(X, **fit_params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for name, (estimator, X, fit_params, grid_name, grid_values) in cases().items():
        row = {"estimator": name}
        for setting in ("alone", "beside a busy process", "GridSearchCV(n_jobs=2)"):
            seconds = {}
            for threads in (1, None):
                model = estimator
                if threads is None:
                    model = UNLIMITED[type(estimator)](**estimator.get_params())
                if setting == "GridSearchCV(n_jobs=2)":
                    run = fit_in_grid_search(model, X, fit_params, grid_name, grid_values)
                else:
                    run = fit_alone(model, X, fit_params)
                stop = multiprocessing.Event()
                busy = None
                if setting == "beside a busy process":
                    busy = multiprocessing.Process(target=_busy, args=(stop,))
                    busy.start()
                try:
                    seconds[threads], _ = timed(run, repeat=args.repeat)
                finally:
                    if busy is not None:
                        stop.set()
                        busy.join()
            row[f"{setting}: 1 thread (s)"] = f"{seconds[1]:.2f}"
            row[f"{setting}: unlimited / 1"] = f"{seconds[None] / seconds[1]:.2f}"
        rows.append(row)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
