"""TranscriptQuantifier on 2 x 10**6 simulated reads of about 3 000 transcripts.

Run on demand (not part of the tests)::

    python benchmarks/bench_transcripts.py [--reads 2000000] [--genes 1500] [--seed 0]

Reports:

- simulation and collapse of the reads into equivalence classes
  (``skem.transcripts.equivalence_classes``), and a fit straight from the reads;
- the floor of one EM step: one ``X @ v`` plus one ``X.T @ u`` with
  scipy.sparse over the class matrix (best of many repeats);
- time per iteration (E-step pass) of plain EM and of SQUAREM as a multiple
  of that floor: (time of a fit of 2000 passes with every stopping rule off -
  time of the same fit with ``max_iter=0``) / 2000, so validation and row
  compression are excluded;
- for plain EM and SQUAREM, under the default stopping rule (``tol=1e-12``,
  relative), the field's rule (``rel_tol=0.01`` after ``min_iter=50``) and no
  rule at all (20 000 passes): iterations, fit time, final log-likelihood per
  read, Spearman correlation of ``est_counts_`` with the true read counts and
  truly absent transcripts left above 1e-8 reads.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning

from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads
from skem.transcripts import equivalence_classes

FRAGMENT_LENGTH = 100


def best_time(function, repeat):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def product_floor(X, repeat=200):
    """Seconds for one X @ v plus one X.T @ u (best of ``repeat`` batches of 10)."""
    rng = np.random.default_rng(0)
    v, u = rng.random(X.shape[1]), rng.random(X.shape[0])

    def ten():
        for _ in range(10):
            X @ v
            X.T @ u

    return best_time(ten, repeat)[0] / 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2_000_000)
    parser.add_argument("--genes", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="fits per setting (best time kept)")
    args = parser.parse_args(argv)

    seconds, (reads, _, truth) = best_time(
        lambda: make_transcript_reads(
            args.reads, n_genes=args.genes, fragment_length=FRAGMENT_LENGTH,
            collapse=False, random_state=args.seed,
        ),
        1,
    )
    M = reads.shape[1]
    print(f"simulated {reads.shape[0]} reads of {M} transcripts ({args.genes} genes) in {seconds:.2f} s")
    seconds, (X, counts) = best_time(lambda: equivalence_classes(reads), args.repeat)
    print(f"collapsed into {X.shape[0]} equivalence classes ({X.nnz} non-zeros) in {seconds:.2f} s")

    def model(**params):
        return TranscriptQuantifier(lengths=truth.lengths, fragment_length=FRAGMENT_LENGTH, **params)

    seconds, from_reads = best_time(lambda: model().fit(reads), 1)
    print(f"fit from the {reads.shape[0]} reads (collapse included): {seconds:.2f} s, "
          f"{from_reads.n_iter_} iterations")

    floor = product_floor(X)
    print(f"floor of one EM step (X @ v + X.T @ u over the classes): {floor * 1e6:.1f} us\n")

    # Cost of one iteration: a fixed number of passes with every stopping rule off.
    n_passes = 2000
    fixed = {"rel_tol": 0.0, "tol": 0.0, "max_iter": n_passes, "min_iter": n_passes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        setup, _ = best_time(lambda: model(max_iter=0).fit(X, sample_weight=counts), args.repeat)
        for accelerate in ("none", "squarem"):
            seconds, fitted = best_time(
                lambda: model(accelerate=accelerate, **fixed).fit(X, sample_weight=counts),
                args.repeat,
            )
            per_pass = (seconds - setup) / fitted.n_iter_
            print(f"{accelerate:8s} {fitted.n_iter_} passes: {per_pass * 1e6:6.1f} us per pass "
                  f"= {per_pass / floor:.2f} x floor")

    rules = {
        "default (tol=1e-12)": {},
        "field's rule (rel_tol)": {"rel_tol": 0.01},
        "strict (no rule, 2e4)": {"tol": 0.0, "max_iter": 20_000},
    }
    absent = truth.counts == 0
    header = f"\n{'stopping':24s} {'accelerate':10s} {'iters':>7s} {'fit s':>8s} " \
             f"{'loglik/read':>18s} {'spearman':>8s} {'absent>1e-8':>11s}"
    print(header)
    print("-" * len(header))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for rule, params in rules.items():
            results = {}
            for accelerate in ("none", "squarem"):
                seconds, fitted = best_time(
                    lambda: model(accelerate=accelerate, **params).fit(X, sample_weight=counts),
                    args.repeat,
                )
                rho = spearmanr(fitted.est_counts_, truth.counts)[0]
                loglik = fitted.score(X, sample_weight=counts)
                results[accelerate] = fitted
                left = int(np.sum(fitted.est_counts_[absent] > 1e-8))
                print(f"{rule:24s} {accelerate:10s} {fitted.n_iter_:7d} {seconds:8.3f} "
                      f"{loglik:18.12f} {rho:8.4f} {left:11d}")
            plain, fast = results["none"], results["squarem"]
            print(f"{'':24s} iterations plain / squarem = {plain.n_iter_ / fast.n_iter_:.1f}; "
                  f"loglik squarem - plain = {fast.lower_bound_ - plain.lower_bound_:+.3e} per read")


if __name__ == "__main__":
    main()
