"""``skem quant-samples``: many samples' equivalence classes quantified at once, locally or on a cluster.

The samples are listed in a table (the manifest); each is read and fitted
where it is processed -- joblib workers on this machine, or the workers of a
``dask.distributed`` scheduler (``--scheduler``) -- by
:func:`skem.samples.quantify_samples`, so no sample is read by this process.
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    UserError,
    add_output_options,
    existing,
    input_file,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    reading,
)

#: Manifest columns naming a sample's files: salmon's dump, or kallisto's three TCC files.
SALMON_COLUMNS = ("eq_classes",)
KALLISTO_COLUMNS = ("matrix_ec", "transcripts", "counts")


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    parser = commands.add_parser(
        "quant-samples", help="transcript abundances of many samples, in parallel or on a cluster",
        description="Fit TranscriptQuantifier to every sample of a manifest, one task per sample "
                    "(joblib workers, or a dask.distributed cluster); write quant.tsv (one row per "
                    "sample and transcript) and the transcripts x samples tables est_counts.tsv "
                    "and tpm.tsv.",
    )
    # help texts are also reStructuredText (the sphinx-argparse reference): no backslashes
    parser.add_argument("manifest", type=input_file,
                        help="tab-separated table with a header: a sample column and either an "
                             "eq_classes column (salmon's eq_classes.txt[.gz]) or matrix_ec, "
                             "transcripts and counts columns (kallisto's TCC files; optional row "
                             "column: the 0-based row of a multi-sample counts matrix); relative "
                             "paths are from the manifest's folder")
    parser.add_argument("--lengths", type=input_file, required=True,
                        help="transcript lengths for all samples: salmon's quant.sf, kallisto's "
                             "abundance.tsv (their effective lengths are used) or a two-column "
                             "table; samples may list the transcripts in any order")
    parser.add_argument("--fragment-length", type=positive_float,
                        help="mean fragment length (effective lengths from --lengths' Length column)")
    parser.add_argument("--method", choices=["em", "vbem"], default="em")
    parser.add_argument("--prior", type=non_negative_float, default=0.0,
                        help="Dirichlet pseudo-count per transcript")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--n-jobs", type=positive_int, default=1,
                       help="samples quantified at once on this machine (default: 1)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a dask.distributed scheduler (e.g. tcp://10.0.0.5:8786) whose "
                            "workers can read the samples' files; needs skem's dask extra")
    add_output_options(parser)
    parser.set_defaults(run=run)


def read_manifest(path, check_files=True):
    """The samples of a manifest as ``{name: source}`` for :func:`skem.samples.quantify_samples`.

    Parameters
    ----------
    path : str or Path
        The manifest: a tab-separated table with a header (see ``skem quant-samples --help``).
    check_files : bool, default=True
        Refuse a sample whose file does not exist here (off when a cluster's
        workers read the files, which this machine may not see).

    Returns
    -------
    dict of str to str or tuple
        Sample name to salmon path, or kallisto ``(matrix.ec, transcripts, counts[, row])``.

    Raises
    ------
    UserError
        Naming the manifest (and the sample) for a missing column, an empty
        or repeated sample name, a missing file or a bad row number.
    """
    import pandas as pd  # here, not at the top: 'skem --help' must not wait for pandas

    path = Path(path)
    with reading(path):
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    columns = set(table.columns)
    if "sample" not in columns:
        raise UserError(f"{path}: the manifest needs a 'sample' column")
    if set(SALMON_COLUMNS) <= columns:
        kind = SALMON_COLUMNS
    elif set(KALLISTO_COLUMNS) <= columns:
        kind = KALLISTO_COLUMNS
    else:
        raise UserError(f"{path}: the manifest needs an eq_classes column, or matrix_ec, "
                        f"transcripts and counts columns")
    if table.empty:
        raise UserError(f"{path}: the manifest lists no samples")
    samples = {}
    for line, row in zip(range(2, len(table) + 2), table.itertuples(index=False)):
        name = getattr(row, "sample").strip()
        if not name:
            raise UserError(f"{path}: line {line}: empty sample name")
        if name in samples:
            raise UserError(f"{path}: line {line}: sample {name!r} is listed twice")
        files = []
        for column in kind:
            file = path.parent / getattr(row, column).strip()
            if check_files and not file.is_file():
                raise UserError(f"{path}: line {line}: sample {name!r}: no such file: {file}")
            files.append(str(file))
        source = files[0] if kind == SALMON_COLUMNS else tuple(files)
        if kind == KALLISTO_COLUMNS and getattr(row, "row", "").strip():
            try:
                source = (*files, int(row.row))
            except ValueError:
                raise UserError(f"{path}: line {line}: sample {name!r}: row must be an "
                                f"integer, got {row.row!r}") from None
        samples[name] = source
    return samples


def _estimator(args):
    """The TranscriptQuantifier of every sample: lengths (and names) from ``--lengths``."""
    from .. import TranscriptQuantifier
    from ..io import lengths_file_kind, read_lengths

    path = existing(args.lengths)
    lengths = read_lengths(path)
    effective = None
    if lengths_file_kind(path) != "table" and args.fragment_length is None:
        effective = read_lengths(path, effective=True).to_numpy(dtype=float)
    return TranscriptQuantifier(
        lengths=lengths.to_numpy(dtype=float),
        fragment_length=None if effective is not None else args.fragment_length,
        effective_lengths=effective, transcript_names=list(lengths.index),
        method=args.method, prior=args.prior, random_state=args.seed,
    )


def run(args, out, progress):
    from ..samples import quantify_samples, wide_table

    samples = read_manifest(existing(args.manifest), check_files=args.scheduler is None)
    estimator = _estimator(args)
    progress(f"{len(samples)} samples over {len(estimator.transcript_names)} transcripts")
    if args.scheduler is None:
        progress(f"quantifying on this machine, {args.n_jobs} at a time")
        table = quantify_samples(samples, estimator, n_jobs=args.n_jobs, backend="joblib")
    else:
        try:
            from distributed import Client
        except ImportError as error:
            raise ImportError("--scheduler needs dask's distributed scheduler: install skem's "
                              "'dask' extra (pip install 'skem[dask]')") from error
        progress(f"quantifying on the cluster at {args.scheduler}, one task per sample")
        with Client(args.scheduler, timeout="30s", set_as_default=False) as client:
            table = quantify_samples(samples, estimator, client=client)
    output = args.output.open()
    table.to_csv(output / "quant.tsv", sep="\t", index=False)
    for column in ("est_counts", "tpm"):
        wide_table(table, column).to_csv(output / f"{column}.tsv", sep="\t", index_label="target_id")
    progress(f"wrote quant.tsv, est_counts.tsv and tpm.tsv to {output}")
    totals = table.groupby("sample", sort=False)["est_counts"].sum().rename("assigned_reads")
    out(totals.round(1).to_string())
