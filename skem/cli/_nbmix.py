"""``skem nbmix``: cluster the rows of a count matrix with NegBinMixture.

Counts come as users have them: tables from R (``write.csv``: an unnamed
first column of row names; ``write.table``: a header one field shorter than
the rows), from spreadsheets and pipelines (CSV or TSV whatever the
extension, optionally gzipped); Cell Ranger's Matrix Market folders; AnnData
``.h5ad`` files. :func:`skem.io.read_counts` reads them all (sparse input
stays sparse) and refuses, with one line naming the file and the entry,
anything that is not counts. Results name rows and features as the input
did; ``--write-h5ad`` hands the clustering back to scanpy users.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import UserError, add_output_options, non_negative_int, positive_int, writing

ROW_NAMES_RULE = (
    "A table's first column holds row names when its header cell is empty (R's write.csv), "
    "when the header is one field shorter than the rows (R's write.table), or when none of "
    "its values is a number; otherwise it holds counts, and a word in it is an error."
)


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    nbmix = commands.add_parser(
        "nbmix", help="cluster count rows with a negative-binomial mixture",
        description="Fit NegBinMixture to counts (rows = samples or cells, columns = features "
                    "or genes); write assignments.tsv and parameters.tsv. " + ROW_NAMES_RULE,
    )
    nbmix.add_argument("counts",
                       help="counts: a CSV or TSV table (detected from the content, optionally "
                            "gzipped); a Cell Ranger matrix folder (matrix.mtx.gz, "
                            "features.tsv.gz, barcodes.tsv.gz; genes x cells, read as cells x "
                            "genes, gene-expression features only) or its .mtx[.gz] file; or an "
                            "AnnData .h5ad file (cells x genes)")
    group = nbmix.add_mutually_exclusive_group()
    # No default, so that argparse sees "-k 2" given with --k-range (a default equal to the
    # given value hides it from the mutual exclusion).
    group.add_argument("-k", type=int, default=None,
                       help="number of components (default: 2)")
    group.add_argument("--k-range", metavar="LOW-HIGH",
                       help="choose K in a range, e.g. 1-8: every K fitted on all rows, the K "
                            "of lowest BIC kept; the 5-fold cross-validated log-likelihood per "
                            "row, on a uniform subsample of at most 20000 rows, is reported too "
                            "(model_selection.tsv)")
    nbmix.add_argument("--dispersion", default="shared",
                       help="shared, component, feature, full, or a fixed number (0 = Poisson)")
    nbmix.add_argument("--size-factors", default="none", metavar="none|library|FILE",
                       help="per-row size factors: none (default); library (each row's total "
                            "relative to the mean total); or a table with a size factor per row "
                            "(one column in row order, or row names and values; a header line "
                            "is optional)")
    inputs = nbmix.add_argument_group("single-cell input")
    inputs.add_argument("--layer", metavar="NAME",
                        help=".h5ad input: cluster layers[NAME] (e.g. raw counts) instead of X")
    genes = inputs.add_mutually_exclusive_group()
    genes.add_argument("--highly-variable", action="store_true",
                       help=".h5ad input: only the genes marked var['highly_variable'] (scanpy's "
                            "highly_variable_genes)")
    genes.add_argument("--genes", metavar="FILE",
                       help="only the genes (features) named in FILE, one a line")
    inputs.add_argument("--gene-ids", action="store_true",
                        help="Cell Ranger input: name genes by their ids (first column of "
                             "features.tsv.gz) instead of their symbols")
    inputs.add_argument("--write-h5ad", metavar="OUT.h5ad",
                        help=".h5ad input: write a copy with obs['skem_component'] (a "
                             "categorical, as scanpy stores clusters) and obsm['skem_proba']")
    nbmix.add_argument("--n-init", type=positive_int, default=3, help="EM restarts (default: 3)")
    nbmix.add_argument("--max-iter", type=non_negative_int, default=None,
                       help="EM iterations per restart (default: the estimator's, 1000)")
    nbmix.add_argument("--seed", type=non_negative_int, default=0)
    add_output_options(nbmix)
    nbmix.set_defaults(run=run)


def _ks(args):
    """The numbers of components to fit, from -k or --k-range (checked before any work)."""
    if args.k_range is None:
        k = 2 if args.k is None else args.k
        if k < 1:
            raise UserError(f"-k must be an integer >= 1, got {k}")
        return [k]
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", args.k_range)
    if match is None:
        raise UserError(f"--k-range must look like 1-8 (both ends given), got {args.k_range!r}")
    low, high = int(match[1]), int(match[2])
    if not 1 <= low <= high:
        raise UserError(f"--k-range must be increasing and start at >= 1, got {args.k_range!r}")
    return list(range(low, high + 1))


def _dispersion_option(text):
    import numpy as np  # here, not at the top: 'skem --help' must not wait for NumPy

    if text in {"shared", "component", "feature", "full"}:
        return text
    try:
        value = float(text)
    except ValueError:
        raise UserError(
            f"--dispersion must be a number >= 0 or one of shared, component, feature, full; "
            f"got {text!r}"
        ) from None
    if not (value >= 0 and np.isfinite(value)):
        raise UserError(f"--dispersion must be a number >= 0, got {text!r}")
    return value


def _check_inputs(args):
    """The input paths and the options that depend on the input's format, before any reading."""
    counts = Path(args.counts)
    if not counts.exists():
        raise UserError(f"no such file or folder: {counts}")
    from ..io import count_format  # here, not at the top: start-up time

    kind = count_format(counts)
    for option, given in (("--layer", args.layer is not None),
                          ("--highly-variable", args.highly_variable),
                          ("--write-h5ad", args.write_h5ad is not None)):
        if given and kind != "h5ad":
            raise UserError(f"{option} applies to .h5ad input; {counts} is not an .h5ad file")
    if args.gene_ids and kind != "10x":
        raise UserError(f"--gene-ids applies to Cell Ranger input; {counts} is not a Matrix "
                        f"Market folder or .mtx file")
    if args.genes is not None and not Path(args.genes).is_file():
        raise UserError(f"--genes: no such file: {args.genes}")
    if args.size_factors not in {"none", "library"} and not Path(args.size_factors).is_file():
        raise UserError(f"--size-factors must be none, library or a file; "
                        f"no such file: {args.size_factors}")
    if args.write_h5ad is not None:
        target = Path(args.write_h5ad)
        if not target.parent.is_dir():
            raise UserError(f"--write-h5ad {target}: no such folder: {target.parent}")
        if target.resolve() == counts.resolve():
            raise UserError(f"--write-h5ad {target}: would replace the input; name a copy")


def _size_factors(option, rows):
    """The explicit size factors of ``rows`` (their names, in order) from ``--size-factors``, or the mode."""
    # here, not at the top: 'skem --help' must not wait for NumPy and pandas
    import numpy as np
    import pandas as pd

    from ..io import read_number_table

    if option in {"none", "library"}:
        return option, None
    path = Path(option)
    table = read_number_table(path, header="auto")
    if table.shape[1] != 1:
        raise UserError(f"{path}: a size-factor table has one column of values, "
                        f"got {table.shape[1]}")
    column = table.iloc[:, 0]
    if isinstance(table.index, pd.RangeIndex):
        if len(column) != len(rows):
            raise UserError(f"{path}: {len(column)} size factors for {len(rows)} rows")
    else:
        missing = rows[~rows.isin(table.index)]
        if len(missing):
            raise UserError(f"{path}: no size factor for row {missing[0]!r} "
                            f"({len(missing)} rows missing)")
        column = column.reindex(rows)
    factors = column.to_numpy()
    bad = ~(factors > 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(f"{path}: the size factor of row {row + 1} ({column.index[row]!r}) is "
                        f"{factors[row]!r}; size factors are positive")
    return "none", factors


def run(args, out, progress):
    # here, not at the top: 'skem --help' must not wait for pandas and the readers
    import pandas as pd

    from .. import NegBinMixture
    from ..io import annotate_h5ad, read_counts, select_features

    # Options first, then the data: a bad option fails before any reading.
    ks, dispersion = _ks(args), _dispersion_option(args.dispersion)
    _check_inputs(args)
    counts = read_counts(args.counts, layer=args.layer, highly_variable=args.highly_variable,
                         gene_names="ids" if args.gene_ids else "symbols")
    if args.genes is not None:
        counts = select_features(counts, args.genes)
    X, n_rows = counts.matrix, counts.matrix.shape[0]
    progress(f"read {n_rows} rows x {X.shape[1]} features "
             f"({'sparse' if hasattr(X, 'nnz') else 'dense'}) from {counts.source}")
    mode, factors = _size_factors(args.size_factors, counts.rows)
    if ks[-1] > n_rows:
        option = "-k" if args.k_range is None else "--k-range"
        raise UserError(f"{option}: K = {ks[-1]} is more than the {n_rows} rows")

    def model(k):
        extra = {} if args.max_iter is None else {"max_iter": args.max_iter}
        return NegBinMixture(k, dispersion=dispersion, n_init=args.n_init,
                             size_factors=mode, random_state=args.seed, **extra)

    if len(ks) == 1:
        progress(f"fitting K = {ks[0]}")
        best, chosen, table = ks[0], model(ks[0]).fit(X, size_factors=factors), None
    else:
        best, chosen, table = _choose_k(model, X, factors, ks, args.seed, progress)
    output = args.output.open()  # after the fits: a failed run leaves an earlier run's files
    if table is not None:
        with writing(output / "model_selection.tsv"):
            table.to_csv(output / "model_selection.tsv", sep="\t")
        out(table.round(4).to_string())
        out(f"\nK by BIC: {best}; K by cross-validated log-likelihood: "
            f"{int(table['cv_log_likelihood_per_row'].idxmax())}. Using K = {best}.")
    posterior = chosen.predict_proba(X, size_factors=factors)
    labels = posterior.argmax(axis=1)
    assignments = pd.DataFrame(posterior, index=counts.rows,
                               columns=[f"posterior_{k}" for k in range(best)])
    assignments.insert(0, "component", labels)
    used = factors if factors is not None else chosen._model.row_size_factors(X)
    if used is not None:
        assignments.insert(1, "size_factor", used)
    with writing(output / "assignments.tsv"):
        assignments.to_csv(output / "assignments.tsv", sep="\t", index_label="row")
    # Named by the input's features: a sparse matrix carries no names for the estimator to keep.
    means, dispersions = chosen.component_means(), chosen.component_dispersions()
    means.columns = dispersions.columns = pd.Index(counts.features, name="feature")
    parameters = means.stack().rename("mean").to_frame()
    parameters["dispersion"] = dispersions.stack()
    parameters.insert(0, "weight", chosen.weights_[parameters.index.get_level_values(0)])
    with writing(output / "parameters.tsv"):
        parameters.reset_index().to_csv(output / "parameters.tsv", sep="\t", index=False)
    progress(f"wrote assignments.tsv, parameters.tsv to {output}")
    if args.write_h5ad is not None:
        info = {"n_components": best, "dispersion": str(args.dispersion),
                "size_factors": str(args.size_factors), "layer": args.layer or "X"}
        annotate_h5ad(args.counts, args.write_h5ad, labels, posterior, info=info)
        progress(f"wrote {args.write_h5ad} (obs['skem_component'], obsm['skem_proba'])")


#: Rows of the cross-validation subsample: its cost does not grow with the input.
CV_ROWS = 20_000
#: The columns of model_selection.tsv, from select_n_components' (index K, not n_components).
SELECTION_COLUMNS = {
    "n_parameters": "n_parameters",
    "log_likelihood": "log_likelihood_per_row",
    "bic": "BIC",
    "cv_log_likelihood": "cv_log_likelihood_per_row",
    "cv_log_likelihood_sd": "cv_log_likelihood_per_row_sd",
    "n_iter": "n_iter",
    "converged": "converged",
}


def _choose_k(model, X, factors, ks, seed, progress):
    """K of lowest BIC among ``ks``, its fit, and the table of all candidates (model_selection.tsv).

    :func:`skem.model_selection.select_n_components` fits every K on all rows and
    scores them all in one pass; the cross-validated log-likelihood per row, a
    second opinion, comes from a uniform subsample of at most :data:`CV_ROWS` rows.
    """
    from ..model_selection import select_n_components

    n_rows = X.shape[0]
    folds, cv_rows = min(5, n_rows), min(CV_ROWS, n_rows)
    progress(f"fitting K = {ks[0]}-{ks[-1]} on all {n_rows} rows, then {folds}-fold "
             f"cross-validation on {'all' if cv_rows == n_rows else 'a uniform subsample of'} "
             f"{cv_rows} rows")
    selection = select_n_components(
        model(ks[0]), X, ks, criterion=["bic", "cv"],
        fit_params={} if factors is None else {"size_factors": factors},
        cv=folds, subsample=CV_ROWS, random_state=seed,
    )
    table = selection.scores.rename(columns=SELECTION_COLUMNS)[list(SELECTION_COLUMNS.values())]
    table.index.name = "K"
    best = selection.n_components
    best_cv = int(table["cv_log_likelihood_per_row"].idxmax())
    progress(f"chose K = {best} of {ks[0]}-{ks[-1]} by BIC (fits on all {n_rows} rows); "
             f"cross-validated log-likelihood per row ({folds} folds on "
             f"{'all' if cv_rows == n_rows else 'a uniform subsample of'} {cv_rows} rows) "
             f"prefers K = {best_cv}")
    return best, selection.estimator, table
