"""``skem quant``: transcript abundances with TranscriptQuantifier."""

from __future__ import annotations

from ..io._library_types import LIBRARY_TYPES
from ._common import (
    UserError,
    add_output_options,
    existing,
    first_line,
    input_file,
    non_negative_float,
    non_negative_int,
    positive_float,
    ratio_below_one,
    reading,
)


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""

    quant = commands.add_parser(
        "quant", help="transcript abundances from equivalence classes or alignments",
        description="Fit TranscriptQuantifier; write abundance.tsv (kallisto's columns), quant.sf "
                    "and salmon's aux_info (with --bootstraps, the replicates tximport reads).",
    )
    source = quant.add_mutually_exclusive_group(required=True)
    # help texts are also reStructuredText (the sphinx-argparse reference): no backslashes
    source.add_argument("--eq-classes", type=input_file,
                        help="salmon's eq_classes.txt[.gz] (from --dumpEq)")
    source.add_argument("--tcc", nargs=3, type=input_file,
                        metavar=("MATRIX_EC", "TRANSCRIPTS", "COUNTS"),
                        help="kallisto's TCC files: matrix.ec, transcripts.txt and the counts "
                             "(MatrixMarket, summed over its rows, or lines of EC id and count, "
                             "tab-separated)")
    source.add_argument("--alignments", type=input_file, help="BAM/SAM aligned to the transcriptome (alignment "
                                             "likelihoods: scores, fragment lengths, positions), "
                                             "or a TSV with read_id, transcript_id[, weight]")
    quant.add_argument("--lengths", type=input_file, help="transcript lengths: salmon's quant.sf, kallisto's "
                                         "abundance.tsv (their effective lengths are used) or a "
                                         "two-column table")
    quant.add_argument("--fragment-length", type=positive_float, help="mean fragment length")
    quant.add_argument("--fragment-sd", type=positive_float,
                       help="fragment length standard deviation (needs --fragment-length)")
    quant.add_argument("--library-type", choices=LIBRARY_TYPES, default="A",
                       help="BAM/SAM only: salmon's library type (default A: detect)")
    quant.add_argument("--score-scale", type=non_negative_float, default=None,
                       help="BAM/SAM only: log-likelihood per point of the AS score (default: from "
                            "the aligner's @PG header line, e.g. 0.95 for bowtie2's default "
                            "penalties, 5.7 for its --mp 1,1 as RSEM runs it; 1 if no known aligner)")
    quant.add_argument("--min-likelihood-ratio", type=ratio_below_one, default=1e-9,
                       help="BAM/SAM only: drop alignments whose error term is below this fraction "
                            "of the fragment's best (default 1e-9; 0 keeps all)")
    quant.add_argument("--method", choices=["em", "vbem"], default="em")
    quant.add_argument("--prior", type=non_negative_float, default=0.0,
                       help="Dirichlet pseudo-count per transcript")
    quant.add_argument("--bootstraps", type=non_negative_int, default=0,
                       help="bootstrap replicates, written in salmon's aux_info/bootstrap layout")
    quant.add_argument("--seed", type=non_negative_int, default=0)
    add_output_options(quant)
    quant.set_defaults(run=run)


def run(args, out, progress):
    # imported here, not at the top: 'skem --help' must not wait for pandas and scikit-learn
    import pandas as pd

    from .. import TranscriptQuantifier
    from ..io import (
        alignments_to_matrix,
        check_table_names,
        read_alignments,
        read_kallisto_tcc,
        read_salmon_eq_classes,
        write_kallisto_abundance,
        write_salmon_dir,
    )

    if args.fragment_sd is not None and args.fragment_length is None:
        raise UserError("--fragment-sd needs --fragment-length (the mean fragment length)")
    lengths = effective = None
    weights = None
    if args.eq_classes or args.tcc:
        if not args.lengths:
            raise UserError("equivalence classes need --lengths (salmon's quant.sf, kallisto's "
                            "abundance.tsv or a two-column table)")
        if args.eq_classes:
            classes = read_salmon_eq_classes(existing(args.eq_classes))
        else:
            classes = read_kallisto_tcc(*(existing(p) for p in args.tcc))
        X, weights, names = classes.X, classes.counts, list(classes.transcript_names)
        weighted = classes.weighted
        progress(f"read {X.shape[0]} equivalence classes over {X.shape[1]} transcripts")
    else:
        source = existing(args.alignments)
        if source.suffix.lower() in {".bam", ".sam"}:
            aligned = read_alignments(
                source, library_type=args.library_type, fragment_length=args.fragment_length,
                fragment_length_sd=args.fragment_sd, score_scale=args.score_scale,
                min_likelihood_ratio=args.min_likelihood_ratio,
            )
            X, weights, names = aligned.X, aligned.counts, list(aligned.transcript_names)
            weighted = True  # alignment likelihoods include the position (length) term
            lengths, effective = aligned.transcript_lengths, aligned.effective_lengths
            if args.score_scale is None:
                progress(f"score scale {aligned.score_scale:.3g} per AS point "
                         f"({aligned.score_scale_source}; --score-scale to change it)")
            progress(
                f"read {aligned.n_fragments} {'fragments (pairs)' if aligned.paired else 'reads'}, "
                f"library type {aligned.library_type}: {aligned.n_unassigned} without a valid "
                f"alignment; {X.shape[0]} classes over {X.shape[1]} transcripts"
            )
            if args.lengths:
                progress("ignoring --lengths: the BAM header has the lengths")
        else:
            with reading(source):
                table = pd.read_csv(source, sep="\t")
            if table.empty:
                raise UserError(f"{source}: the alignment table has no rows")
            weight = "weight" if "weight" in table.columns else None
            table.index = pd.RangeIndex(2, len(table) + 2, name="line")  # after the header line
            try:
                aligned = alignments_to_matrix(table, weight=weight)
            except ValueError as error:  # a missing column or a bad row: say which file
                raise UserError(f"{source}: {first_line(error)}") from error
            X, names, weighted = aligned.X, list(aligned.transcript_names), False
            progress(f"read {X.shape[0]} reads aligned to {X.shape[1]} transcripts")
            if not args.lengths:
                raise UserError("an alignment table needs --lengths")
    try:  # names that quant.sf cannot carry fail now, not after the fit
        check_table_names(names, "transcript")
    except ValueError as error:
        raise UserError(f"{_source(args)}: {first_line(error)}") from error
    if lengths is None:
        lengths, effective = _lengths_from_file(args, names, weighted, progress)
    model = TranscriptQuantifier(
        lengths=lengths,
        fragment_length=None if effective is not None else args.fragment_length,
        fragment_length_sd=None if effective is not None else args.fragment_sd,
        effective_lengths=effective,
        x_includes_length=weighted,
        transcript_names=names,
        method=args.method,
        prior=args.prior,
        n_bootstraps=args.bootstraps,
        random_state=args.seed,
    )
    progress(f"quantifying ({args.method}{', with alignment/salmon weights' if weighted else ''})")
    model.fit(X, sample_weight=weights)
    output = args.output.open()
    write_kallisto_abundance(model.abundance_, output / "abundance.tsv")
    write_salmon_dir(model, output)
    extra = f", {args.bootstraps} bootstraps in aux_info/bootstrap" if args.bootstraps else ""
    progress(f"{model.n_iter_} iterations; wrote abundance.tsv and quant.sf{extra} to {output}")
    top = model.abundance_.sort_values("est_counts", ascending=False).head(10)
    out(top.round(2).to_string(index=False))


def _source(args):
    """The input file(s) the transcript names came from, for a message."""
    return args.eq_classes or args.alignments or " ".join(args.tcc)


def _lengths_from_file(args, names, weighted, progress):
    """``(lengths, effective lengths or None)`` of ``names`` from ``--lengths``.

    A quant.sf or abundance.tsv carries the tool's own effective lengths:
    they are used (and said so) unless ``--fragment-length`` asks for ours.
    Salmon's class weights already include salmon's effective lengths, so
    with them only salmon's own quant.sf will do.
    """
    from ..io import lengths_file_kind, read_lengths

    path = existing(args.lengths)
    kind = lengths_file_kind(path)
    table = read_lengths(path)
    missing = [n for n in names if n not in table.index]
    if missing:
        raise UserError(f"{args.lengths}: no length for transcript {missing[0]!r}")
    lengths = table.reindex(names).to_numpy(dtype=float)
    column = {"salmon": "EffectiveLength", "kallisto": "eff_length"}.get(kind)
    if weighted:
        if kind != "salmon":
            raise UserError(
                f"{args.lengths}: salmon's weighted classes include salmon's effective lengths: "
                "give its quant.sf as --lengths"
            )
        if args.fragment_length is not None:
            progress("ignoring --fragment-length: salmon's weights include its effective lengths")
    elif column is None or args.fragment_length is not None:
        if column is not None:
            progress(f"effective lengths from the Length column and --fragment-length "
                     f"(not the file's {column} column)")
        return lengths, None
    effective = read_lengths(path, effective=True).reindex(names).to_numpy(dtype=float)
    progress(f"using the {column} column of {path.name} as effective lengths")
    return lengths, effective
