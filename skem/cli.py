"""The ``skem`` command: ``skem demo`` and one workflow per estimator.

Each subcommand only parses arguments, reads input, fits and writes; all the
modelling lives in the estimators. User errors (a missing file, malformed
input, bad options) end with a one-line message and exit code 2, never a
traceback. Progress goes to standard error, results to files and standard
output.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]

EPILOG = """examples:
  skem demo                                   fit all three estimators on bundled data
  skem nbmix counts.csv --k-range 1-8 -o out  cluster count rows; choose K by BIC and CV
  skem nbmix counts.tsv -k 3 -o out           cluster with a fixed number of components
  skem quant --eq-classes eq_classes.txt.gz --lengths quant.sf -o out
  skem quant --alignments reads.bam --fragment-length 200 -o out
  skem motif promoters.fa -w 12 --both-strands -o out

Run 'skem COMMAND --help' for the options of a command.
"""


class UserError(Exception):
    """A problem with the user's input or options, reported as one line."""


class Progress:
    """One line per step on standard error, with the elapsed time."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- nbmix


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


def _nbmix(args, out, progress):
    from sklearn.model_selection import cross_val_score

    from . import NegBinMixture

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
    output = _output_dir(args.output)
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


# ------------------------------------------------------------------- quant


def _quant(args, out, progress):
    from . import TranscriptQuantifier
    from .io import alignments_to_matrix, read_bam, read_lengths, read_salmon_eq_classes
    from .io import write_kallisto_abundance

    effective = None
    if args.eq_classes:
        if not args.lengths:
            raise UserError("--eq-classes needs --lengths (salmon's quant.sf or a two-column table)")
        classes = read_salmon_eq_classes(_existing(args.eq_classes))
        X, weights, names = classes.X, classes.counts, list(classes.transcript_names)
        weighted = classes.weighted
        progress(f"read {X.shape[0]} equivalence classes over {X.shape[1]} transcripts")
    else:
        source = _existing(args.alignments)
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
        table = read_lengths(_existing(args.lengths))
        missing = [n for n in names if n not in table.index]
        if missing:
            raise UserError(f"{args.lengths}: no length for transcript {missing[0]!r}")
        lengths = table.reindex(names).to_numpy(dtype=float)
        effective = _salmon_effective_lengths(args.lengths, names) if weighted else None
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
    output = _output_dir(args.output)
    write_kallisto_abundance(model.abundance_, output / "abundance.tsv")
    progress(f"{model.n_iter_} iterations; wrote abundance.tsv to {output}")
    top = model.abundance_.sort_values("est_counts", ascending=False).head(10)
    out(top.round(2).to_string(index=False))


def _salmon_effective_lengths(path, names):
    """Salmon's own effective lengths when the lengths file is a quant.sf (its weights include them)."""
    from .io import read_salmon_quant

    try:
        quant = read_salmon_quant(path)
    except ValueError:
        raise UserError(
            f"{path}: salmon weights in the classes need salmon's effective lengths: give its quant.sf"
        ) from None
    return quant.set_index("Name").reindex(names)["EffectiveLength"].to_numpy(dtype=float)


# ------------------------------------------------------------------- motif


def _motif(args, out, progress):
    from . import MotifMixture
    from .io import read_fasta, write_meme
    from .sequences import sequence_windows

    sequences = read_fasta(_existing(args.sequences))
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
    output = _output_dir(args.output)
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
    from .plotting import plot_logo

    names = []
    for k in range(1, model.n_components):
        figure = plot_logo(model, k).ax.figure
        figure.savefig(output / f"logo_motif{k}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        names.append(f"logo_motif{k}.png")
    return names


# -------------------------------------------------------------------- demo


def _demo(args, out, progress):
    output = _output_dir(args.output)
    _demo_negbin(out, progress, output)
    _demo_transcripts(out, progress, output)
    _demo_motif(out, progress, output)


def _demo_negbin(out, progress, output):
    from . import NegBinMixture
    from .datasets import load_negbin_counts

    counts, cell_type = load_negbin_counts()
    out(f"== NegBinMixture: {counts.shape[0]} cells x {counts.shape[1]} genes (bundled example)")
    progress("fitting NegBinMixture for K = 1..5")
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
    _figure(output, "negbin_histogram.png", lambda plt: _plot_negbin(plt, counts, model), progress)


def _plot_negbin(plt, counts, model):
    from scipy.stats import nbinom

    gene = counts.columns[0]
    x = counts[gene].to_numpy()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    grid = np.arange(x.max() + 1)
    ax.hist(x, bins=grid - 0.5, density=True, color="0.8", label="cells")
    d = list(counts.columns).index(gene)
    for k in range(model.n_components):
        size = 1 / model.dispersion_[k, d]
        pmf = nbinom.pmf(grid, size, size / (size + model.means_[k, d])) * model.weights_[k]
        ax.plot(grid, pmf, marker=".", label=f"component {k}")
    ax.set(xlabel=f"{gene} count", ylabel="density", title="NegBinMixture fit")
    ax.legend()
    return fig


def _demo_transcripts(out, progress, output):
    from scipy.stats import spearmanr

    from . import TranscriptQuantifier
    from .datasets import load_transcript_example

    data = load_transcript_example()
    out(f"\n== TranscriptQuantifier: {int(data.counts.sum())} reads in {data.X.shape[0]} "
        f"equivalence classes over {data.X.shape[1]} transcripts (bundled example)")
    progress("quantifying transcripts with 30 bootstraps")
    model = TranscriptQuantifier(
        lengths=data.lengths, fragment_length=data.fragment_length,
        transcript_names=data.transcript_names, n_bootstraps=30, random_state=0,
    ).fit(data.X, sample_weight=data.counts)
    table = model.abundance_.merge(data.truth, on="target_id")
    rho = spearmanr(table["est_counts"], table["true_counts"])[0]
    top = table.sort_values("est_counts", ascending=False).head(8)
    columns = ["target_id", "eff_length", "est_counts", "est_counts_sd", "true_counts", "tpm"]
    out(f"\nTop transcripts against the truth ({model.n_iter_} EM iterations; "
        f"Spearman rho = {rho:.3f} over all transcripts):")
    out(top[columns].round(1).to_string(index=False))
    _figure(output, "transcripts_vs_truth.png", lambda plt: _plot_transcripts(plt, table), progress)


def _plot_transcripts(plt, table):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.errorbar(table["true_counts"] + 1, table["est_counts"] + 1,
                yerr=table["est_counts_sd"], fmt=".", alpha=0.7)
    ax.set(xscale="log", yscale="log", xlabel="true reads + 1", ylabel="estimated reads + 1",
           title="TranscriptQuantifier vs truth")
    lim = [1, table[["true_counts", "est_counts"]].to_numpy().max() * 2]
    ax.plot(lim, lim, color="0.5", lw=1)
    return fig


def _demo_motif(out, progress, output):
    from . import MotifMixture
    from .datasets import load_motif_example
    from .sequences import sequence_windows

    data = load_motif_example()
    width = data.pwm.shape[0]
    windows = sequence_windows(data.sequences, width)
    out(f"\n== MotifMixture: {len(data.sequences)} sequences -> {len(windows)} overlapping windows "
        f"of width {width} (bundled example; 'skem motif --both-strands' searches both strands)")
    progress("searching for the motif")
    model = MotifMixture(background="position-independent", random_state=0).fit(windows.windows)
    truth = "".join(np.array(list("ACGT"))[data.pwm.argmax(axis=1)])
    out(f"\nconsensus found: {model.consensus_[1]}")
    out(f"true consensus:  {truth}")
    out(f"fraction of windows that are sites: {model.weights_[1]:.4f} "
        f"(planted: {len(data.sites) / len(windows):.4f})")
    sites = windows.sites(model.predict_proba(windows.windows)[:, 1])
    found = sites.merge(data.sites, on=["sequence", "start"], how="inner")
    out(f"sites at posterior >= 0.5: {len(sites)}, of which {len(found)} at a planted site "
        f"(planted: {len(data.sites)})")
    out("\nFound motif, letter probabilities per position:")
    out(model.pwm(1).round(2).T.to_string())
    _figure(output, "motif_logo.png", lambda plt: _plot_logo(plt, model), progress)


def _reverse_complement(sequence):
    return sequence[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _plot_logo(plt, model):
    from .plotting import plot_logo

    return plot_logo(model, 1).ax.figure


def _figure(output, name, draw, progress):
    """Write a figure when matplotlib (and, for logos, logomaker) is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure = draw(plt)
    except ImportError:
        progress(f"skipped {name}: install the plot extra (pip install 'skem[plot]') for figures")
        return
    figure.savefig(output / name, dpi=120, bbox_inches="tight")
    plt.close(figure)
    progress(f"wrote {output / name}")


# ----------------------------------------------------------------- helpers


def _existing(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    return path


def _output_dir(path):
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {path}: {error.strerror}") from None
    return path


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skem",
        description="EM estimators for computational biology, scikit-learn style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="fit all three estimators on bundled example data")
    demo.add_argument("-o", "--output", default="skem-demo",
                      help="folder for the figures (default: skem-demo)")
    demo.set_defaults(run=_demo)

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
    nbmix.set_defaults(run=_nbmix)

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
    quant.set_defaults(run=_quant)

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
    motif.set_defaults(run=_motif)
    return parser


def main(argv=None):
    """Run the ``skem`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        The exit code: 0 on success, 2 on a user error.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    progress = Progress(args.quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            args.run(args, print, progress)
    except (UserError, ValueError, FileNotFoundError, ImportError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"skem {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
