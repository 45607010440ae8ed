"""SequenceMotifMixture with a width range against one width (issue 21 item 5).

Run on demand (not part of the tests)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_motif_widths.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_motif_widths.py --check   # + every width fully

Data: ``make_motif_sequences(n, length, width=12)`` (one planted site per
sequence). Reported, in one run: the whole fit with ``width=12`` and with
``width=(8, 20)`` (best of ``--repeat`` each, as contention only adds time),
their ratio, and the chosen width and log10 E-value. With ``--check`` every
width of the range is also fitted on its own and the one of smallest E-value
printed: what fitting every width to convergence would choose.
"""

from __future__ import annotations

import argparse

from _common import print_table, timed
from skem import SequenceMotifMixture
from skem.datasets import make_motif_sequences


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="sequences")
    parser.add_argument("--length", type=int, default=80, help="letters per sequence")
    parser.add_argument("--min-width", type=int, default=8)
    parser.add_argument("--max-width", type=int, default=20)
    parser.add_argument("--width", type=int, default=12, help="the single width compared")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="also fit every width fully")
    args = parser.parse_args()
    X, _, _ = make_motif_sequences(args.n, args.length, width=12, random_state=0)
    one_time, one = timed(lambda: SequenceMotifMixture(width=args.width, random_state=0).fit(X),
                          repeat=args.repeat)
    widths = (args.min_width, args.max_width)
    range_time, ranged = timed(lambda: SequenceMotifMixture(width=widths, random_state=0).fit(X),
                               repeat=args.repeat)
    rows = [
        {"fit": f"width={args.width}", "seconds": f"{one_time:.3f}", "ratio": "1",
         "width": one.widths_[0], "log10 E": f"{one.log10_evalues_[0]:.2f}"},
        {"fit": f"width={widths}", "seconds": f"{range_time:.3f}",
         "ratio": f"{range_time / one_time:.1f}", "width": ranged.widths_[0],
         "log10 E": f"{ranged.log10_evalues_[0]:.2f}"},
    ]
    print(f"{args.n} sequences of {args.length} letters, planted width 12")
    print_table(rows, ["fit", "seconds", "ratio", "width", "log10 E"])
    if args.check:
        each = {w: SequenceMotifMixture(width=w, random_state=0).fit(X).log10_evalues_[0]
                for w in range(widths[0], widths[1] + 1)}
        best = min(each, key=lambda w: (each[w], w))
        print(f"every width fitted fully: width {best}, log10 E-value {each[best]:.2f}")


if __name__ == "__main__":
    main()
