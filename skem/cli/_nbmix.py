"""``skem nbmix``: cluster the rows of a count table with NegBinMixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import UserError, output_dir


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    nbmix = commands.add_parser(
        "nbmix", help="cluster count rows with a negative-binomial mixture",
        description="Fit NegBinMixture to a table of counts (rows = samples or cells, "
                    "columns = features); write assignments.tsv and parameters.tsv.",
    )
    nbmix.add_argument("counts", help="counts table, CSV or TSV (optionally .gz); "
                                      "a non-numeric first column is the row name")
    group = nbmix.add_mutually_exclusive_group()
    group.add_argument("-k", type=int, default=2, help="number of components (default: 2)")
    group.add_argument("--k-range", help="choose K in a range, e.g. 1-8, by BIC "
                                         "(cross-validated log-likelihood is reported too)")
    nbmix.add_argument("--dispersion", default="shared",
                       help="shared, component, feature, full, or a fixed number (0 = Poisson)")
    nbmix.add_argument("--n-init", type=int, default=3, help="EM restarts (default: 3)")
    nbmix.add_argument("--max-iter", type=int, default=200)
    nbmix.add_argument("--seed", type=int, default=0)
    nbmix.add_argument("-o", "--output", required=True, help="output folder")
    nbmix.set_defaults(run=run)


def _parse_k_range(text):
    try:
        low, _, high = text.partition("-")
        low, high = int(low), int(high or low)
    except ValueError:
        raise UserError(f"--k-range must look like 1-8, got {text!r}") from None
    if not 1 <= low <= high:
        raise UserError(f"--k-range must be increasing and start at >= 1, got {text!r}")
    return list(range(low, high + 1))


def read_count_table(path):
    """Read a counts table (CSV or TSV, optionally gzipped); a non-numeric first column is the row index."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    sep = "\t" if ".tsv" in suffixes or ".txt" in suffixes else ","
    table = pd.read_csv(path, sep=sep)
    if table.shape[1] and not pd.api.types.is_numeric_dtype(table.iloc[:, 0]):
        table = table.set_index(table.columns[0])
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise UserError(f"{path}: column {non_numeric[0]!r} is not numeric (counts expected)")
    if table.empty:
        raise UserError(f"{path}: the table has no rows or no count columns")
    return table


def run(args, out, progress):
    from sklearn.model_selection import cross_val_score

    from .. import NegBinMixture

    counts = read_count_table(args.counts)
    progress(f"read {counts.shape[0]} rows x {counts.shape[1]} features from {args.counts}")
    dispersion = _dispersion_option(args.dispersion)
    ks = [args.k] if args.k_range is None else _parse_k_range(args.k_range)
    if ks[-1] > counts.shape[0]:
        raise UserError(f"K = {ks[-1]} is more than the {counts.shape[0]} rows")

    def model(k):
        return NegBinMixture(k, dispersion=dispersion, n_init=args.n_init,
                             max_iter=args.max_iter, random_state=args.seed)

    fits, rows = {}, []
    for k in ks:
        progress(f"fitting K = {k}")
        fits[k] = model(k).fit(counts)
        row = {"K": k, "log_likelihood": fits[k].score(counts) * len(counts), "BIC": fits[k].bic(counts)}
        if len(ks) > 1:
            folds = min(5, len(counts))
            row["cv_log_likelihood"] = float(np.mean(cross_val_score(model(k), counts, cv=folds)))
        rows.append(row)
    selection = pd.DataFrame(rows).set_index("K")
    best = int(selection["BIC"].idxmin())
    output = output_dir(args.output)
    if len(ks) > 1:
        best_cv = int(selection["cv_log_likelihood"].idxmax())
        selection.to_csv(output / "model_selection.tsv", sep="\t")
        out(selection.round(3).to_string())
        out(f"\nK by BIC: {best}; K by cross-validated log-likelihood: {best_cv}. Using K = {best}.")
    chosen = fits[best]
    posterior = chosen.predict_proba(counts)
    assignments = pd.DataFrame(posterior, index=counts.index,
                               columns=[f"posterior_{k}" for k in range(best)])
    assignments.insert(0, "component", posterior.argmax(axis=1))
    assignments.to_csv(output / "assignments.tsv", sep="\t", index_label="row")
    K, D = chosen.means_.shape
    parameters = pd.DataFrame({
        "component": np.repeat(np.arange(K), D),
        "weight": np.repeat(chosen.weights_, D),
        "feature": np.tile(np.asarray(counts.columns, dtype=str), K),
        "mean": chosen.means_.ravel(),
        "dispersion": chosen.dispersion_.ravel(),
    })
    parameters.to_csv(output / "parameters.tsv", sep="\t", index=False)
    progress(f"wrote assignments.tsv, parameters.tsv to {output}")


def _dispersion_option(text):
    if text in {"shared", "component", "feature", "full"}:
        return text
    try:
        value = float(text)
    except ValueError:
        raise UserError(
            f"--dispersion must be a number >= 0 or one of shared, component, feature, full; got {text!r}"
        ) from None
    if value < 0:
        raise UserError(f"--dispersion must be >= 0, got {value}")
    return value
