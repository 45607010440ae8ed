"""The ``skem`` command: ``skem demo`` and the per-estimator workflows.

Each subcommand only parses arguments, reads input, fits and writes; all the
modelling lives in the estimators. User errors (a missing file, bad input
data) end with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd

__all__ = ["main"]

EPILOG = """examples:
  skem demo                      fit the estimators on bundled example data
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _demo_negbin(out):
    from . import NegBinMixture
    from .datasets import load_negbin_counts

    counts, cell_type = load_negbin_counts()
    out(f"NegBinMixture on {counts.shape[0]} cells x {counts.shape[1]} genes (bundled example)")
    models = {
        k: NegBinMixture(k, dispersion="shared", n_init=3, random_state=0).fit(counts)
        for k in range(1, 6)
    }
    bic = pd.Series({k: m.bic(counts) for k, m in models.items()}, name="BIC")
    best = int(bic.idxmin())
    out("\nChoosing the number of components by BIC (lower is better):")
    out(bic.rename_axis("K").to_frame().round(1).to_string())
    model = models[best]
    table = pd.DataFrame(model.means_, columns=counts.columns).round(2)
    table.insert(0, "weight", model.weights_.round(3))
    table.index.name = "component"
    out(f"\nFitted components (K = {best}; means per gene; shared dispersion "
        f"phi = {model.dispersion_[0, 0]:.3f}, true 0.2):")
    out(table.to_string())
    labels = pd.Series(model.predict(counts), index=counts.index, name="component")
    out("\nComponents against the true cell types:")
    out(pd.crosstab(cell_type, labels).to_string())


def _demo(args, out):
    _demo_negbin(out)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skem",
        description="EM estimators for computational biology, scikit-learn style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="fit the estimators on bundled example data")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    """Run the ``skem`` command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            args.run(args, print)
    except (UserError, ValueError, FileNotFoundError, ImportError) as error:
        print(f"skem {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
