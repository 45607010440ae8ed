"""``skem motif``: find motifs in FASTA sequences with SequenceMotifMixture."""

from __future__ import annotations

from ._common import (
    UserError,
    add_output_options,
    existing,
    first_line,
    non_negative_int,
    positive_int,
    probability,
    reading,
)

#: --alphabet names; any other value is the letters themselves.
ALPHABETS = {"dna": "ACGT", "rna": "ACGU", "protein": "ACDEFGHIKLMNPQRSTVWY"}


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    motif = commands.add_parser(
        "motif", help="find motifs in FASTA sequences",
        description="Fit MEME's sequence models (SequenceMotifMixture) to whole "
                    "sequences; write motifs.meme (MEME minimal format, with nsites= and E=), "
                    "sites.tsv (sites by sequence name) and a logo per motif.",
    )
    motif.add_argument("sequences", help="FASTA file (optionally .gz)")
    motif.add_argument("-w", "--width", type=positive_int, help="motif width (or --minw/--maxw)")
    motif.add_argument("--minw", type=positive_int, help="smallest width tried (default 8)")
    motif.add_argument("--maxw", type=positive_int, help="largest width tried (default 20)")
    motif.add_argument("--mode", choices=["oops", "zoops", "tcm"], default="zoops",
                       help="sites per sequence: one, zero or one (default), any number")
    motif.add_argument("--revcomp", "--both-strands", dest="revcomp", action="store_true",
                       help="a site may lie on either strand (nucleotides)")
    motif.add_argument("--pal", action="store_true",
                       help="palindromic motifs: equal to their reverse complement (MEME -pal)")
    motif.add_argument("--alphabet", default="dna",
                       help="dna (default), rna, protein, or the letters themselves")
    motif.add_argument("--n-motifs", type=positive_int, default=1)
    motif.add_argument("--n-init", type=positive_int, default=1)
    motif.add_argument("--threshold", type=probability, default=0.5,
                       help="posterior to report a site")
    motif.add_argument("--seed", type=non_negative_int, default=0)
    add_output_options(motif)
    motif.set_defaults(run=run)


def _widths(args):
    if args.width is not None:
        if args.minw is not None or args.maxw is not None:
            raise UserError("give either -w or --minw/--maxw, not both")
        return args.width
    low = args.minw if args.minw is not None else 8
    high = args.maxw if args.maxw is not None else max(20, low)
    if low > high:
        raise UserError(f"--minw {low} is larger than --maxw {high}")
    return (low, high)


def run(args, out, progress):
    from .. import SequenceMotifMixture
    from ..io import read_fasta, write_meme

    widths = _widths(args)
    alphabet = ALPHABETS.get(args.alphabet.lower(), args.alphabet)
    with reading(args.sequences):
        sequences = read_fasta(existing(args.sequences))
    if not sequences:
        raise UserError(f"{args.sequences}: no sequences")
    shortest = widths if isinstance(widths, int) else widths[0]
    if max(len(s) for s in sequences.values()) < shortest:
        raise UserError(f"{args.sequences}: every sequence is shorter than the width {shortest}")
    progress(f"{len(sequences)} sequences, {sum(map(len, sequences.values()))} letters; "
             f"mode {args.mode}, width {widths}" + (", either strand" if args.revcomp else ""))
    model = SequenceMotifMixture(
        width=widths, mode=args.mode, n_motifs=args.n_motifs, revcomp=args.revcomp or args.pal,
        palindromic=args.pal, alphabet=alphabet, n_init=args.n_init, random_state=args.seed,
    )
    try:
        model.fit(sequences)
    except ValueError as error:
        # Errors about the data name the FASTA record; say which file it is in.
        raise UserError(f"{args.sequences}: {first_line(error)}") from error
    progress(f"fitted in {model.n_iter_} iterations")
    output = args.output.open()
    names = [f"motif{k}" for k in range(1, len(model.pwms_))]
    write_meme(output / "motifs.meme", dict(zip(names, model.pwms_[1:])), alphabet=model.alphabet_,
               background=model.background_, nsites=dict(zip(names, model.nsites_)),
               evalues=dict(zip(names, model.evalues_)),
               strands="+ -" if model.revcomp or model.palindromic else "+")
    sites = model.sites(sequences, threshold=args.threshold)
    sites["motif"] = [names[k - 1] for k in sites["motif"]]
    sites = sites.rename(columns={"posterior": "probability"})
    sites.to_csv(output / "sites.tsv", sep="\t", index=False)
    for k, name in enumerate(names):
        out(f"{name}: consensus {model.consensus_[k + 1]}, width {model.widths_[k]}, "
            f"{model.nsites_[k]:.0f} sites expected, "
            f"{int((sites['motif'] == name).sum())} found at posterior >= {args.threshold}, "
            f"E-value {model.evalues_[k]:.2g}")
    written = ["motifs.meme", "sites.tsv"] + _logos(model, output)
    progress(f"wrote {', '.join(written)} to {output}")


def _logos(model, output):
    """Sequence logos when matplotlib and logomaker are installed (the ``plot`` extra)."""
    try:
        import logomaker  # noqa: F401
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from ..plotting import plot_logo

    names = []
    for k in range(1, len(model.pwms_)):
        figure = plot_logo(model, k).ax.figure
        figure.savefig(output / f"logo_motif{k}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        names.append(f"logo_motif{k}.png")
    return names
