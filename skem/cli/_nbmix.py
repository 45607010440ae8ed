"""``skem nbmix``: cluster the rows of a count table with NegBinMixture.

Count tables come from R (``write.csv``: an unnamed first column of row
names; ``write.table``: a header one field shorter than the rows), from
spreadsheets and from pipelines, as CSV or TSV whatever their extension,
optionally gzipped. :func:`read_count_table` reads all of these, and
refuses with one line naming the file (and the row and column) anything it
cannot read as counts: an empty, binary or truncated file, a ragged row, a
value that is not a number.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from ._common import UserError, add_output_options, existing, non_negative_int, positive_int, reading

#: The first bytes of a gzip stream (the extension is not trusted).
GZIP_MAGIC = b"\x1f\x8b"


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    nbmix = commands.add_parser(
        "nbmix", help="cluster count rows with a negative-binomial mixture",
        description="Fit NegBinMixture to a table of counts (rows = samples or cells, "
                    "columns = features); write assignments.tsv and parameters.tsv.",
    )
    nbmix.add_argument("counts",
                       help="counts table, CSV or TSV (detected from the content, optionally "
                            "gzipped); a first column of row names (R's write.csv) is the index")
    group = nbmix.add_mutually_exclusive_group()
    group.add_argument("-k", type=int, default=2, help="number of components (default: 2)")
    group.add_argument("--k-range",
                       help="choose K in a range, e.g. 1-8, by BIC (the cross-validated "
                            "log-likelihood per row is reported too)")
    nbmix.add_argument("--dispersion", default="shared",
                       help="shared, component, feature, full, or a fixed number (0 = Poisson)")
    nbmix.add_argument("--size-factors", default="none", metavar="none|library|FILE",
                       help="per-row size factors: none (default); library (each row's total "
                            "relative to the mean total); or a table with a size factor per row "
                            "(one column in row order, or row names and values)")
    nbmix.add_argument("--n-init", type=positive_int, default=3, help="EM restarts (default: 3)")
    nbmix.add_argument("--max-iter", type=non_negative_int, default=None,
                       help="EM iterations per restart (default: the estimator's, 1000)")
    nbmix.add_argument("--seed", type=non_negative_int, default=0)
    add_output_options(nbmix)
    nbmix.set_defaults(run=run)


def _ks(args):
    """The numbers of components to fit, from -k or --k-range (checked before any work)."""
    if args.k_range is None:
        if args.k < 1:
            raise UserError(f"-k must be an integer >= 1, got {args.k}")
        return [args.k]
    try:
        low, _, high = args.k_range.partition("-")
        low, high = int(low), int(high or low)
    except ValueError:
        raise UserError(f"--k-range must look like 1-8, got {args.k_range!r}") from None
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


def _read_text(path):
    """The file's text: gunzipped if it is gzip (by its first bytes), decoded as UTF-8."""
    with reading(path):
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    if b"\x00" in raw:
        raise UserError(f"{path}: not a text table (binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text table (not UTF-8 text)") from None
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    return text


def _separator(text):
    """Tab if the header line has tabs (and no more commas than tabs), else comma."""
    header = next(line for line in text.splitlines() if line.strip())
    return "\t" if 0 < header.count(",") < header.count("\t") or (
        "\t" in header and "," not in header) else ","


def read_count_table(path):
    """Read a table of counts into a DataFrame of floats (rows x features).

    Parameters
    ----------
    path : str or Path
        CSV or TSV (the separator is detected from the header line), plain or
        gzipped (detected from the content).

    Returns
    -------
    DataFrame
        Row names as the index (the first column when its header is empty,
        as R's ``write.csv`` writes it, or when its values are not all
        numbers; R's ``write.table`` layout, a header one field short, too),
        one float column per feature.

    Raises
    ------
    UserError
        One line naming the file for an empty, binary, undecodable or
        truncated file, a ragged row, a missing or non-numeric value (with
        its row and column), or a table without rows or count columns.
    """
    # here, not at the top: 'skem --help' must not wait for NumPy and pandas
    import numpy as np
    import pandas as pd

    path = Path(path)
    text = _read_text(path)
    with reading(path):
        table = pd.read_csv(io.StringIO(text), sep=_separator(text), dtype=str,
                            keep_default_na=False, na_values=[])
    header_is_short = not isinstance(table.index, pd.RangeIndex)  # write.table layout
    if table.shape[1] and not header_is_short:
        first = table.columns[0]
        unnamed = str(first).startswith("Unnamed: 0") or str(first).strip() == ""
        if unnamed or pd.to_numeric(table[first], errors="coerce").isna().any():
            table = table.set_index(first)
            table.index.name = None if unnamed else first
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise UserError(f"{path}: the table has no rows or no count columns")
    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row, column = np.argwhere(bad)[0]
        if table.iat[row, column] == "":
            _check_row_lengths(path, text)
        raise UserError(
            f"{path}: row {row + 1} ({table.index[row]!r}), column {table.columns[column]!r}: "
            f"{table.iat[row, column]!r} is not numeric (counts expected)"
        )
    values.columns = [str(c) for c in values.columns]
    return values.astype(np.float64)


def _check_row_lengths(path, text):
    """A row with fewer fields than the header (pandas pads it with empty values) is an error."""
    sep = _separator(text)
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=sep) if row]
    width = max(len(rows[0]), len(rows[1]) if len(rows) > 1 else 0)  # write.table: header short
    for number, row in enumerate(rows[1:], start=1):
        if len(row) < width:
            raise UserError(f"{path}: row {number} ({row[0]!r}) has {len(row)} fields, "
                            f"fewer fields than the header ({width})")


def _size_factors(option, counts):
    """The explicit size factors of the rows of ``counts`` from ``--size-factors``, or the mode."""
    import pandas as pd  # here, not at the top: 'skem --help' must not wait for pandas

    if option in {"none", "library"}:
        return option, None
    path = Path(option)
    table = read_count_table(path)
    if table.shape[1] != 1:
        raise UserError(f"{path}: a size-factor table has one column of values, "
                        f"got {table.shape[1]}")
    column = table.iloc[:, 0]
    if isinstance(table.index, pd.RangeIndex):
        if len(column) != len(counts):
            raise UserError(f"{path}: {len(column)} size factors for {len(counts)} rows")
        return "none", column.to_numpy()
    missing = counts.index[~counts.index.isin(table.index)]
    if len(missing):
        raise UserError(f"{path}: no size factor for row {missing[0]!r} "
                        f"({len(missing)} rows missing)")
    return "none", column.reindex(counts.index).to_numpy()


def run(args, out, progress):
    # here, not at the top: 'skem --help' must not wait for NumPy and pandas
    import numpy as np
    import pandas as pd
    from sklearn import config_context
    from sklearn.model_selection import cross_val_score

    from .. import NegBinMixture

    # Options first, then the data: a bad option fails before any reading.
    ks, dispersion = _ks(args), _dispersion_option(args.dispersion)
    if args.size_factors not in {"none", "library"} and not Path(args.size_factors).is_file():
        raise UserError(f"--size-factors must be none, library or a file; "
                        f"no such file: {args.size_factors}")
    counts = read_count_table(existing(args.counts))
    progress(f"read {counts.shape[0]} rows x {counts.shape[1]} features from {args.counts}")
    mode, factors = _size_factors(args.size_factors, counts)
    if ks[-1] > counts.shape[0]:
        option = "-k" if args.k_range is None else "--k-range"
        raise UserError(f"{option}: K = {ks[-1]} is more than the {counts.shape[0]} rows")
    X = counts.to_numpy()

    def model(k):
        extra = {} if args.max_iter is None else {"max_iter": args.max_iter}
        return NegBinMixture(k, dispersion=dispersion, n_init=args.n_init,
                             size_factors=mode, random_state=args.seed, **extra)

    fits, rows = {}, []
    for k in ks:
        progress(f"fitting K = {k}")
        fits[k] = model(k).fit(counts, size_factors=factors)
        # Per-row quantities throughout: the mean log-likelihood of the training rows and of
        # held-out rows; BIC is the usual total criterion.
        row = {"K": k,
               "n_parameters": fits[k]._model.n_parameters(fits[k]._get_fitted_params()),
               "log_likelihood_per_row": fits[k].score(counts, size_factors=factors),
               "BIC": fits[k].bic(counts, size_factors=factors)}
        if len(ks) > 1:
            folds = min(5, len(counts))
            params = {} if factors is None else {"size_factors": factors}
            with config_context(enable_metadata_routing=True):
                routed = model(k).set_fit_request(size_factors=True).set_score_request(
                    size_factors=True, sample_weight=False)
                row["cv_log_likelihood_per_row"] = float(np.mean(
                    cross_val_score(routed, X, cv=folds, params=params)))
        rows.append(row)
    selection = pd.DataFrame(rows).set_index("K")
    best = int(selection["BIC"].idxmin())
    output = args.output.open()
    if len(ks) > 1:
        best_cv = int(selection["cv_log_likelihood_per_row"].idxmax())
        selection.to_csv(output / "model_selection.tsv", sep="\t")
        out(selection.round(4).to_string())
        out(f"\nK by BIC: {best}; K by cross-validated log-likelihood: {best_cv}. Using K = {best}.")
    chosen = fits[best]
    posterior = chosen.predict_proba(counts, size_factors=factors)
    assignments = pd.DataFrame(posterior, index=counts.index,
                               columns=[f"posterior_{k}" for k in range(best)])
    assignments.insert(0, "component", posterior.argmax(axis=1))
    used = factors if factors is not None else chosen._model.row_size_factors(X)
    if used is not None:
        assignments.insert(1, "size_factor", used)
    assignments.to_csv(output / "assignments.tsv", sep="\t", index_label="row")
    means, dispersion = chosen.component_means(), chosen.component_dispersions()
    parameters = means.stack().rename("mean").to_frame()
    parameters["dispersion"] = dispersion.stack()
    parameters.index.names = ["component", "feature"]
    parameters.insert(0, "weight", chosen.weights_[parameters.index.get_level_values(0)])
    parameters.reset_index().to_csv(output / "parameters.tsv", sep="\t", index=False)
    progress(f"wrote assignments.tsv, parameters.tsv to {output}")

