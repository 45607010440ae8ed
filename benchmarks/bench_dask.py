"""NegBinMixture out of core: a count matrix on disk, larger than the memory the fit may use.

Run on demand (not part of the tests)::

    python benchmarks/bench_dask.py                              # 4e6 x 50, K=3, 10 iterations
    python benchmarks/bench_dask.py --rows 400000 --max-iter 3   # a quick look

The matrix -- int32 counts of a K-component negative-binomial mixture, 1.6 GB
as float64 -- is written once to ``--dir`` as one .npy file per chunk of
``--chunk-rows`` rows, and read back as a dask array (one ``np.load`` per
block and pass: nothing stays in memory between passes). The fits run each
in a fresh process and for a fixed number of iterations (``tol=0``), so that
their passes compare:

- threads: all rows on dask's threaded scheduler in the fitting process (one
  thread per core); its address space may grow by at most ``--budget`` GiB
  during the fit (RLIMIT_AS), less than the float64 matrix;
- cluster: all rows on a ``dask.distributed.LocalCluster`` of one
  single-threaded worker process per core, on the loopback interface (the
  workers read the files; the driver only sends parameters and adds sums);
- memory: the first ``--slice-rows`` rows loaded as one float64 array, its
  time per pass scaled by rows.

Reported: seconds per EM pass (E-step over all rows and the reduction), the
rest of the fit (validation pass, pair table, initialization, M-steps; row
compression in memory), and the peak resident memory (getrusage) of the
fitting process -- for the cluster, of the busiest worker -- in all and above
its size before the fit, also in float64 chunks.
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

import numpy as np

GiB = 2**30


def write_matrix(directory, n_rows, n_features, chunk_rows, n_components, seed=0):
    """Write the count matrix chunk by chunk (skipped when the same one is there)."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = dict(rows=n_rows, features=n_features, chunk_rows=chunk_rows,
                components=n_components, seed=seed)
    meta_path = directory / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return meta
    for old in directory.glob("chunk_*.npy"):
        old.unlink()
    rng = np.random.default_rng(seed)
    means = rng.gamma(2.0, 5.0, size=(n_components, n_features)) + 0.5
    weights = rng.dirichlet(np.full(n_components, 5.0))
    size = 1 / 0.3  # dispersion 0.3
    start = time.perf_counter()
    for index, first in enumerate(range(0, n_rows, chunk_rows)):
        rows = min(chunk_rows, n_rows - first)
        labels = rng.choice(n_components, size=rows, p=weights)
        mu = means[labels]
        counts = rng.negative_binomial(size, size / (size + mu)).astype(np.int32)
        np.save(directory / f"chunk_{index:05d}.npy", counts)
    meta_path.write_text(json.dumps(meta))
    print(f"wrote {n_rows} x {n_features} int32 counts in {time.perf_counter() - start:.0f} s")
    return meta


def chunk_files(directory):
    return sorted(directory.glob("chunk_*.npy"))


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def virtual_size():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * resource.getpagesize()


def _import_skem():
    import skem.negbin  # noqa: F401


def child(args):
    """One fit in this process; prints a JSON line of figures."""
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from skem import NegBinMixture, _dask, _em

    directory = Path(args.dir)
    meta = json.loads((directory / "meta.json").read_text())
    files = chunk_files(directory)
    D = meta["features"]
    passes = []

    def time_passes(cls):
        original = cls.reduce_chunks

        def timed(self, function, model, chunk_size):
            start = time.perf_counter()
            try:
                return original(self, function, model, chunk_size)
            finally:
                passes.append(time.perf_counter() - start)

        cls.reduce_chunks = timed

    if args.child in ("threads", "cluster"):
        time_passes(_dask.DaskRows)
        step = meta["chunk_rows"]
        sizes = [min(step, meta["rows"] - i * step) for i in range(len(files))]
        X = da.concatenate([
            da.from_delayed(dask.delayed(np.load)(str(path)), shape=(rows, D), dtype=np.int32)
            for path, rows in zip(files, sizes)
        ])
        n_rows = X.shape[0]
    else:
        time_passes(_em.RowData)
        n_files = -(-args.slice_rows // meta["chunk_rows"])
        X = np.concatenate([np.load(path) for path in files[:n_files]])[: args.slice_rows]
        X = X.astype(np.float64)
        n_rows = X.shape[0]
    model = NegBinMixture(meta["components"], max_iter=args.max_iter, tol=0.0, random_state=0)
    client = None
    if args.child == "cluster":
        cluster = LocalCluster(processes=True, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        client.run(_import_skem)  # so that "before" includes the workers' imports
    before = current_rss() if client is None else max(client.run(current_rss).values())
    if args.child == "threads" and args.budget > 0:
        limit = virtual_size() + int(args.budget * GiB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 runs max_iter iterations
        model.fit(X)
    total = time.perf_counter() - start
    peak = peak_rss() if client is None else max(client.run(peak_rss).values())
    figures = dict(
        mode=args.child, rows=int(n_rows), total=total, passes=passes,
        rest=total - sum(passes), peak=peak, before=before, lower_bound=model.lower_bound_,
    )
    if client is not None:
        figures["driver_peak"] = peak_rss()
        client.close()
        cluster.close()
    print(json.dumps(figures))


def run_child(mode, args):
    command = [sys.executable, __file__, "--child", mode, "--dir", args.dir,
               "--max-iter", str(args.max_iter), "--slice-rows", str(args.slice_rows),
               "--budget", str(args.budget)]
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--slice-rows", type=int, default=1_000_000)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--budget", type=float, default=1.0,
                        help="GiB of address space the dask fit may add (0: no limit)")
    parser.add_argument("--dir", default="/tmp/skem_bench_dask")
    parser.add_argument("--modes", default="threads,cluster,memory",
                        help="comma-separated fits to run: threads, cluster, memory")
    parser.add_argument("--child", choices=["threads", "cluster", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    meta = write_matrix(Path(args.dir), args.rows, args.features, args.chunk_rows, args.components)
    chunk_bytes = 8 * args.chunk_rows * args.features
    matrix_bytes = 8 * args.rows * args.features
    print(f"matrix {args.rows} x {args.features}: {matrix_bytes / GiB:.2f} GiB as float64, "
          f"{len(chunk_files(Path(args.dir)))} chunks of {chunk_bytes / 2**20:.0f} MiB (float64); "
          f"K={meta['components']}, {args.max_iter} iterations")
    results = {mode: run_child(mode, args) for mode in args.modes.split(",")}
    print(f"{'fit':<9}{'rows':>9}{'s/pass':>8}{'scaled':>8}{'passes':>7}{'rest s':>8}"
          f"{'total s':>8}{'peak RSS':>10}{'above start':>13}{'chunks':>7}{'objective':>12}")
    for mode, r in results.items():
        per_pass = float(np.median(r["passes"]))
        scaled = per_pass * args.rows / r["rows"]
        above = r["peak"] - r["before"]
        print(f"{mode:<9}{r['rows']:>9}{per_pass:>8.2f}{scaled:>8.2f}{len(r['passes']):>7}"
              f"{r['rest']:>8.1f}{r['total']:>8.1f}{r['peak'] / GiB:>8.2f} G{above / GiB:>11.2f} G"
              f"{above / chunk_bytes:>7.1f}{r['lower_bound']:>12.5f}")
    if "cluster" in results:
        print(f"cluster driver peak RSS: {results['cluster']['driver_peak'] / GiB:.2f} G")
    print("scaled: seconds per pass over all rows (the in-memory slice's time x rows ratio)")


if __name__ == "__main__":
    main()
