"""``skem demo``: all three estimators on bundled example data."""

from __future__ import annotations

from ._common import figure, output_dir


def add_parser(commands):
    """Add this subcommand to the ``skem`` parser's subcommands."""
    demo = commands.add_parser("demo", help="fit all three estimators on bundled example data")
    demo.add_argument("-o", "--output", default="skem-demo",
                      help="folder for the figures (default: skem-demo)")
    demo.set_defaults(run=run)


# NumPy, pandas and the estimators are imported in the functions that use them: 'skem --help'
# imports this module and must not wait for them.


def run(args, out, progress):
    output = output_dir(args.output)
    _demo_negbin(out, progress, output)
    _demo_transcripts(out, progress, output)
    _demo_motif(out, progress, output)


def _demo_negbin(out, progress, output):
    import pandas as pd

    from .. import NegBinMixture
    from ..datasets import load_negbin_counts

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
    figure(output, "negbin_histogram.png", lambda plt: _plot_negbin(plt, counts, model), progress)


def _plot_negbin(plt, counts, model):
    import numpy as np
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

    from .. import TranscriptQuantifier
    from ..datasets import load_transcript_example

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
    figure(output, "transcripts_vs_truth.png", lambda plt: _plot_transcripts(plt, table), progress)


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
    import numpy as np

    from .. import SequenceMotifMixture
    from ..datasets import load_motif_example
    from ..sequences import revcomp_permutation

    data = load_motif_example()
    width = data.pwm.shape[0]
    lengths = {len(s) for s in data.sequences.values()}
    out(f"\n== SequenceMotifMixture: {len(data.sequences)} sequences of {'/'.join(map(str, lengths))} nt "
        f"(bundled example), motif width {width}; MEME's ZOOPS model on both strands")
    progress("searching for the motif")
    model = SequenceMotifMixture(width=width, mode="zoops", revcomp=True, random_state=0)
    model.fit(data.sequences)
    found = model.pwms_[1]
    # The fit may read the motif as its reverse complement: compare in the closer orientation.
    flipped = found.reshape(-1)[revcomp_permutation(width)].reshape(width, -1)
    reversed_ = np.linalg.norm(flipped - data.pwm) < np.linalg.norm(found - data.pwm)
    symbols = np.array(list(model.alphabet_))
    truth = "".join(symbols[data.pwm.argmax(axis=1)])
    out(f"\nconsensus found: {model.consensus_[1]}"
        + ("  (the reverse complement of the planted motif: its sites read on the - strand)"
           if reversed_ else ""))
    out(f"true consensus:  {truth}")
    out(f"L2 distance to the planted PWM: "
        f"{np.linalg.norm((flipped if reversed_ else found) - data.pwm):.3f}; "
        f"E-value {model.evalues_[0]:.2g}")
    out(f"sequences with a site: {model.site_probs_[0]:.3f} estimated, "
        f"{len(data.sites) / len(data.sequences):.3f} planted; expected number of sites "
        f"{model.nsites_[0]:.1f} (planted: {len(data.sites)})")
    sites = model.sites(data.sequences)
    merged = data.sites.merge(sites, on="sequence", how="outer", suffixes=("_planted", "_found"))
    order = {name: i for i, name in enumerate(data.sequences)}
    both = merged.dropna(subset=["start_planted", "start_found"])
    both = both.sort_values("sequence", key=lambda names: names.map(order), kind="stable")
    exact = int((both["start_planted"] == both["start_found"]).sum())
    out(f"sites at posterior >= 0.5: {len(sites)}, of which {exact} at a planted site's start "
        f"(planted: {len(data.sites)}; {len(data.sites) - len(both)} planted sequences without "
        f"a call, {len(sites) - len(both)} calls in sequences without a planted site)")
    table = both.head(6).copy()
    table["start_planted"] = table["start_planted"].astype(int)
    table["start_found"] = table["start_found"].astype(int)
    columns = ["sequence", "start_planted", "site_planted", "start_found", "strand_found",
               "site_found", "posterior"]
    out("\nFound vs planted sites (first sequences; a site is read on its strand):")
    out(table[columns].round(3).to_string(index=False))
    out("\nFound motif, letter probabilities per position:")
    out(model.pwm(1).round(2).T.to_string())
    figure(output, "motif_logo.png", lambda plt: _plot_logo(plt, model), progress)


def _plot_logo(plt, model):
    from ..plotting import plot_logo

    return plot_logo(model, 1).ax.figure
