"""``skem motif``: find motifs in FASTA sequences with MotifMixture."""

from __future__ import annotations

import pandas as pd

from ._common import UserError, existing, output_dir


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    motif = commands.add_parser(
        "motif", help="find a motif in FASTA sequences",
        description="Cut sequences into windows, fit MotifMixture; write motifs.meme "
                    "(MEME minimal format), sites.tsv and a logo per motif.",
    )
    motif.add_argument("sequences", help="FASTA file (optionally .gz)")
    motif.add_argument("-w", "--width", type=int, required=True, help="motif width")
    motif.add_argument("--both-strands", action="store_true",
                       help="a site may lie on either strand (MotifMixture(revcomp=True))")
    motif.add_argument("--n-motifs", type=int, default=1)
    motif.add_argument("--n-init", type=int, default=1)
    motif.add_argument("--threshold", type=float, default=0.5, help="posterior to report a site")
    motif.add_argument("--seed", type=int, default=0)
    motif.add_argument("-o", "--output", required=True, help="output folder")
    motif.set_defaults(run=run)


def run(args, out, progress):
    from .. import MotifMixture
    from ..io import read_fasta, write_meme
    from ..sequences import sequence_windows

    sequences = read_fasta(existing(args.sequences))
    if not sequences:
        raise UserError(f"{args.sequences}: no sequences")
    short = [name for name, s in sequences.items() if len(s) < args.width]
    if short:
        raise UserError(f"{args.sequences}: sequence {short[0]!r} is shorter than -w {args.width}")
    # Both strands: forward windows, each site on either strand of its window (revcomp).
    windows = sequence_windows(sequences, args.width)
    progress(f"{len(sequences)} sequences -> {len(windows)} windows of width {args.width}"
             + (", either strand" if args.both_strands else ""))
    model = MotifMixture(
        n_components=args.n_motifs + 1,
        background="position-independent",
        revcomp=args.both_strands,
        n_init=args.n_init,
        random_state=args.seed,
    ).fit(windows.windows)
    progress(f"fitted in {model.n_iter_} iterations")
    output = output_dir(args.output)
    motifs = {f"motif{k}": model.pwms_[k] for k in range(1, model.n_components)}
    site_windows = model.weights_[1:] * len(windows)
    write_meme(output / "motifs.meme", motifs, background=model.background_,
               nsites={name: float(n) for name, n in zip(motifs, site_windows)})
    posterior = model.predict_proba(windows.windows)
    sites = pd.concat(
        [windows.sites(posterior[:, k], threshold=args.threshold,
                       minus_strand=model.predict_strand_proba(windows.windows, k)[:, 1])
         .assign(motif=f"motif{k}")
         for k in range(1, model.n_components)],
        ignore_index=True,
    )
    sites.to_csv(output / "sites.tsv", sep="\t", index=False)
    for k in range(1, model.n_components):
        out(f"motif{k}: consensus {model.consensus_[k]}, {site_windows[k - 1]:.0f} sites expected, "
            f"{int((sites['motif'] == f'motif{k}').sum())} found at posterior >= {args.threshold}")
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
    for k in range(1, model.n_components):
        figure = plot_logo(model, k).ax.figure
        figure.savefig(output / f"logo_motif{k}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        names.append(f"logo_motif{k}.png")
    return names
