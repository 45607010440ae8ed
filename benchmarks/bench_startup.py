"""Start-up of the ``skem`` command and of ``import skem``, against ``import sklearn`` in the same run.

Run on demand (not part of the tests), from the repository's root (so that
its ``skem`` is the one imported)::

    python benchmarks/bench_startup.py [--repeats 20] [--tree PATH ...]

Each case is a fresh interpreter (``python -m skem --version``, ``python -c
"import skem"``, ...), timed from the parent; the cases take turns, so a
busy machine slows them alike. Printed: the minimum and median wall time of
``--repeats`` runs of each. ``--tree`` adds another checkout of skem (e.g.
``git worktree add /tmp/old main``) to compare, in the same interleaved run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = [
    ("skem --version", ["-m", "skem", "--version"]),
    ("skem --help", ["-m", "skem", "--help"]),
    ("skem nbmix --help", ["-m", "skem", "nbmix", "--help"]),
    ("skem quant --help", ["-m", "skem", "quant", "--help"]),
    ("skem motif --help", ["-m", "skem", "motif", "--help"]),
    ("import skem", ["-c", "import skem"]),
    ("import sklearn", ["-c", "import sklearn"]),
    ("python -c pass", ["-c", "pass"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tree", nargs="*", default=[], help="other checkouts of skem to time too")
    args = parser.parse_args()
    trees = [os.getcwd(), *args.tree]
    times = {(name, tree): [] for name, _ in CASES for tree in trees}
    for _ in range(args.repeats):
        for name, argv in CASES:
            for tree in trees:
                start = time.perf_counter()
                subprocess.run([sys.executable, *argv], cwd=tree, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name, tree].append(time.perf_counter() - start)
    print(f"wall time in s, min / median of {args.repeats} (trees: {', '.join(trees)})")
    for name, _ in CASES:
        cells = [f"{min(times[name, t]):6.3f} / {statistics.median(times[name, t]):6.3f}"
                 for t in trees]
        print(f"{name:20s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
