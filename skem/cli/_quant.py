"""``skem quant``: transcript abundances with TranscriptQuantifier."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import UserError, existing, output_dir


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    quant = commands.add_parser(
        "quant", help="transcript abundances from equivalence classes or alignments",
        description="Fit TranscriptQuantifier; write abundance.tsv with kallisto's columns.",
    )
    source = quant.add_mutually_exclusive_group(required=True)
    source.add_argument("--eq-classes", help="salmon's eq_classes.txt[.gz] (from --dumpEq)")
    source.add_argument("--alignments", help="BAM/SAM aligned to the transcriptome, or a TSV "
                                             "with read_id, transcript_id[, weight]")
    quant.add_argument("--lengths", help="transcript lengths: salmon's quant.sf, kallisto's "
                                         "abundance.tsv or a two-column table")
    quant.add_argument("--fragment-length", type=float, help="mean fragment length")
    quant.add_argument("--fragment-sd", type=float, help="fragment length standard deviation")
    quant.add_argument("--method", choices=["em", "vbem"], default="em")
    quant.add_argument("--prior", type=float, default=0.0, help="Dirichlet pseudo-count per transcript")
    quant.add_argument("--bootstraps", type=int, default=0)
    quant.add_argument("--seed", type=int, default=0)
    quant.add_argument("-o", "--output", required=True, help="output folder")
    quant.set_defaults(run=run)


def run(args, out, progress):
    from .. import TranscriptQuantifier
    from ..io import alignments_to_matrix, read_bam, read_lengths, read_salmon_eq_classes
    from ..io import write_kallisto_abundance

    if args.fragment_sd is not None and args.fragment_length is None:
        raise UserError("--fragment-sd needs --fragment-length (the mean fragment length)")
    effective = None
    if args.eq_classes:
        if not args.lengths:
            raise UserError("--eq-classes needs --lengths (salmon's quant.sf or a two-column table)")
        classes = read_salmon_eq_classes(existing(args.eq_classes))
        X, weights, names = classes.X, classes.counts, list(classes.transcript_names)
        weighted = classes.weighted
        progress(f"read {X.shape[0]} equivalence classes over {X.shape[1]} transcripts")
    else:
        source = existing(args.alignments)
        if source.suffix.lower() in {".bam", ".sam"}:
            aligned = read_bam(source)
        else:
            table = pd.read_csv(source, sep="\t")
            weight = "weight" if "weight" in table.columns else None
            aligned = alignments_to_matrix(table, weight=weight)
        X, weights, names, weighted = aligned.X, None, list(aligned.transcript_names), False
        progress(f"read {X.shape[0]} reads aligned to {X.shape[1]} transcripts")
        if aligned.transcript_lengths is not None and not args.lengths:
            lengths = np.asarray(aligned.transcript_lengths, dtype=float)
    if args.lengths:
        lengths, effective = _lengths_from_file(args, names, weighted, progress)
    elif args.eq_classes or "lengths" not in locals():
        raise UserError("transcript lengths are needed: give --lengths")
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
    progress(f"quantifying ({args.method}{', with salmon weights' if weighted else ''})")
    model.fit(X, sample_weight=weights)
    output = output_dir(args.output)
    write_kallisto_abundance(model.abundance_, output / "abundance.tsv")
    progress(f"{model.n_iter_} iterations; wrote abundance.tsv to {output}")
    top = model.abundance_.sort_values("est_counts", ascending=False).head(10)
    out(top.round(2).to_string(index=False))


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
