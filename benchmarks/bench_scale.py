"""NegBinMixture at single-cell scale, out of core: the time of one EM pass against cells and workers.

Run on demand (not part of the tests), from the repository's root (or with skem installed)::

    PYTHONPATH=. python benchmarks/bench_scale.py                     # 10^5, 3*10^5, 10^6 cells x 2 000 genes
    PYTHONPATH=. python benchmarks/bench_scale.py --cells 20000,60000 --chunk-rows 10000   # a quick look

Data: ``bench_negbin_sc.py``'s simulation (about 5 % non-zero, 10 cell types,
gene-wise dispersions, sequencing depth varying 10x), float32 CSR, written
once to a zarr store in AnnData's layout (``--dir``) with
:func:`skem.io.write_zarr_rows`; the smaller sizes are its first rows.
Every fit is ``NegBinMixture(K=10, dispersion="feature",
size_factors="library")`` for ``--max-iter`` iterations (``tol=0``, so that
the passes compare) from the same start (``means_init``: the k-means start
of an in-memory fit of the first 20 000 rows), each in a fresh process:

- dask: the store read lazily with :func:`skem.io.read_zarr_rows`
  (``--chunk-rows`` rows per block), fitted on a ``dask.distributed``
  LocalCluster of ``w`` single-threaded worker processes (``--workers``),
  each block read from disk by the worker that uses it, in every pass;
- memory: the same rows loaded as one CSR matrix, fitted in this process
  (one core: the E-step runs on one BLAS thread).

Reported: seconds per EM pass (the median pass: E-step over all rows and the
reduction), in wall time and in CPU time of all the fit's processes (the
driver, with a LocalCluster's scheduler, and the workers: on a shared
machine the CPU time is the steadier figure), their ratios to the in-memory
pass of the same rows, the rest of
the fit (validation and library-size passes, initialization, M-steps), the
peak resident memory (getrusage) of the busiest worker -- in all, above its
size before the fit, and in blocks (the CSR bytes of one block) -- and how
far the dask fit's objective and means are from the in-memory fit's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import numpy as np
import zarr
from bench_negbin_sc import simulate
from dask.distributed import Client, LocalCluster

from skem import NegBinMixture, _dask, _em
from skem.io import read_zarr_rows, write_zarr_rows

GiB = 2**30
K = 10


def write_store(directory, n_cells, n_genes, chunk_rows, seed):
    """Simulate the largest size once and write it to ``directory/counts.zarr`` (skipped when a
    store of the same data with at least as many cells is there: smaller sizes are its first rows)."""
    meta = dict(cells=n_cells, genes=n_genes, types=K, seed=seed, chunk_rows=chunk_rows)
    meta_path = directory / "meta.json"
    if meta_path.exists():
        written = json.loads(meta_path.read_text())
        if written["cells"] >= n_cells and {**written, "cells": n_cells} == meta:
            return
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    X, _, _ = simulate(n_cells, n_genes, K, seed)
    write_zarr_rows(X, directory / "counts.zarr", chunk_rows=chunk_rows)
    meta_path.write_text(json.dumps(meta))
    print(f"wrote {n_cells} x {n_genes} ({X.nnz} non-zero) in {time.perf_counter() - start:.0f} s")


def start_means(directory, chunk_rows):
    """The shared start: means and weights of the k-means start on the first 20 000 rows."""
    path = directory / "start.npz"
    if path.exists():
        start = np.load(path)
        return start["means"], start["weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=0 does not converge, by design
        with dask.config.set(scheduler="threads"):
            X = read_zarr_rows(directory / "counts.zarr", chunk_rows=chunk_rows)[:20_000].compute()
        model = NegBinMixture(K, dispersion="feature", size_factors="library", max_iter=0,
                              random_state=0).fit(X)
    np.savez(path, means=model.means_, weights=model.weights_)
    return model.means_, model.weights_


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _import_skem():
    import skem.negbin  # noqa: F401


def child(args):
    """One fit in this process; prints a JSON line of figures."""
    directory = Path(args.dir)
    start = np.load(directory / "start.npz")
    passes, cpu_passes = [], []
    client = cluster = None

    def cpu_seconds():
        """CPU time of this process (the driver, and a LocalCluster's scheduler) and the workers."""
        workers = 0.0 if client is None else sum(client.run(time.process_time).values())
        return time.process_time() + workers

    def time_passes(cls):
        original = cls.reduce_chunks

        def timed(self, function, model, chunk_size):
            begin, cpu_begin = time.perf_counter(), cpu_seconds()
            try:
                return original(self, function, model, chunk_size)
            finally:
                passes.append(time.perf_counter() - begin)
                cpu_passes.append(cpu_seconds() - cpu_begin)

        cls.reduce_chunks = timed

    X = read_zarr_rows(directory / "counts.zarr", chunk_rows=args.chunk_rows)[: args.child_cells]
    if args.child == "dask":
        time_passes(_dask.DaskRows)
        cluster = LocalCluster(n_workers=args.child_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        client.run(_import_skem)  # so that "before" includes the workers' imports
        before = max(client.run(current_rss).values())
    else:
        time_passes(_em.RowData)
        with dask.config.set(scheduler="synchronous"):
            X = X.compute()
        before = current_rss()
    model = NegBinMixture(K, dispersion="feature", size_factors="library", means_init=start["means"],
                          max_iter=args.max_iter, tol=0.0, random_state=0)
    begin = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    total = time.perf_counter() - begin
    warned = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught
                     if w.category.__name__ != "ConvergenceWarning"})
    peak = peak_rss() if client is None else max(client.run(peak_rss).values())
    np.save(directory / f"means_{args.child}_{args.child_cells}_{args.child_workers}.npy", model.means_)
    print(json.dumps(dict(
        mode=args.child, cells=args.child_cells, workers=args.child_workers, total=total,
        passes=passes, cpu_passes=cpu_passes, peak=peak, before=before, lower_bounds=list(model.lower_bounds_),
        warnings=warned,
    )))
    if client is not None:
        client.close()
        cluster.close()


def run_child(args, mode, cells, workers):
    command = [sys.executable, __file__, "--child", mode, "--child-cells", str(cells),
               "--child-workers", str(workers), "--dir", args.dir, "--chunk-rows",
               str(args.chunk_rows), "--max-iter", str(args.max_iter)]
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def block_bytes(directory, chunk_rows, cells):
    """Mean CSR bytes (float32 values, int32 indices, int64 pointers) of a block of the first rows."""
    indptr = zarr.open_group(str(directory / "counts.zarr"), mode="r")["X/indptr"][: cells + 1]
    n_blocks = -(-cells // chunk_rows)
    return (8 * int(indptr[-1]) + 8 * (cells + n_blocks)) / n_blocks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="100000,300000,1000000",
                        help="comma-separated numbers of cells (the first rows of the largest)")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="comma-separated cluster sizes")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the in-memory fits (and the comparison with them)")
    parser.add_argument("--dir", default="/tmp/skem_bench_scale")
    parser.add_argument("--child", choices=["dask", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--child-cells", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    cells = [int(n) for n in args.cells.split(",")]
    workers = [int(n) for n in args.workers.split(",")]
    directory = Path(args.dir)
    write_store(directory, max(cells), args.genes, args.chunk_rows, seed=0)
    start_means(directory, args.chunk_rows)
    print(f"K={K}, dispersion='feature', size_factors='library'; {args.max_iter} iterations "
          f"({args.max_iter + 1} passes) per fit; blocks of {args.chunk_rows} rows")
    header = (f"{'fit':<10}{'cells':>9}{'s/pass':>8}{'/memory':>8}{'CPU s/pass':>11}{'/memory':>8}"
              f"{'rest s':>8}{'peak RSS':>10}"
              f"{'above start':>13}{'blocks':>8}{'objective':>13}{'d objective':>13}{'d means':>10}")
    print(header)
    for n in cells:
        runs = [] if args.no_memory else [("memory", 1)]
        runs += [("dask", w) for w in workers]
        memory = None
        block = block_bytes(directory, args.chunk_rows, n)
        for mode, w in runs:
            r = run_child(args, mode, n, w)
            per_pass = float(np.median(r["passes"]))
            cpu_pass = float(np.median(r["cpu_passes"]))
            means = np.load(directory / f"means_{mode}_{n}_{w}.npy")
            if mode == "memory":
                memory = dict(per_pass=per_pass, cpu_pass=cpu_pass, objective=r["lower_bounds"][-1], means=means)
            above = r["peak"] - r["before"]
            label = "memory" if mode == "memory" else f"dask x{w}"
            ratio = cpu_ratio = d_objective = d_means = ""
            if memory is not None and mode == "dask":
                ratio = f"{per_pass / memory['per_pass']:.2f}"
                cpu_ratio = f"{cpu_pass / memory['cpu_pass']:.2f}"
                d_objective = f"{abs(r['lower_bounds'][-1] - memory['objective']) / abs(memory['objective']):.1e}"
                d_means = f"{np.max(np.abs(means - memory['means']) / memory['means']):.1e}"
            print(f"{label:<10}{n:>9}{per_pass:>8.2f}{ratio:>8}{cpu_pass:>11.2f}{cpu_ratio:>8}"
                  f"{r['total'] - sum(r['passes']):>8.1f}"
                  f"{r['peak'] / GiB:>8.2f} G{above / GiB:>11.2f} G{above / block:>8.1f}"
                  f"{r['lower_bounds'][-1]:>13.6f}{d_objective:>13}{d_means:>10}", flush=True)
            for warning in r["warnings"]:
                print(f"{'':<10}warning: {warning}")
    print("s/pass: wall time of the median pass; CPU s/pass: CPU time of all the fit's processes "
          "(driver and scheduler, workers) during it; /memory: over the in-memory pass of the same "
          "rows; blocks: peak above start in CSR bytes of one block; d: relative difference from "
          "the in-memory fit")


if __name__ == "__main__":
    main()
