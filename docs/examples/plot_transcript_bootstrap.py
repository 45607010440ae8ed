"""
Transcript abundances against the truth, with bootstrap intervals
=================================================================

:func:`skem.datasets.make_transcript_reads` simulates RNA-seq fragments from
genes with alternatively spliced isoforms (and a paralog pair), and returns
the equivalence classes of the reads -- which transcripts each read is
compatible with -- together with the true abundances.
:class:`skem.TranscriptQuantifier` estimates the reads per transcript by EM,
as kallisto does; with ``n_bootstraps`` it also refits on resampled class
counts, which gives each estimate an interval. Reads shared by several
isoforms are what makes the estimates uncertain, and the intervals show it.
"""

# %%
# Simulate reads and quantify
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np

from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads

X, class_counts, truth = make_transcript_reads(
    50_000, n_genes=40, fragment_length=100, random_state=1
)
print(f"{X.shape[0]} equivalence classes over {X.shape[1]} transcripts, "
      f"{int(class_counts.sum())} reads")

model = TranscriptQuantifier(
    lengths=truth.lengths,
    fragment_length=100,
    transcript_names=truth.transcript_names,
    n_bootstraps=50,
    random_state=0,
).fit(X, sample_weight=class_counts)
print(f"EM stopped after {model.n_iter_} iterations (converged: {model.converged_})")
print(model.abundance_.head().round(2).to_string(index=False))

# %%
# The abundance table has kallisto's columns (and ``est_counts_sd``,
# ``tpm_sd`` from the bootstraps), ready for
# :func:`skem.io.write_kallisto_abundance`. Percentile intervals come from
# the replicates in ``bootstrap_est_counts_``.
low, high = np.percentile(model.bootstrap_est_counts_, [2.5, 97.5], axis=0)
inside = (truth.counts >= low) & (truth.counts <= high)
print(f"true count inside the 95 % bootstrap interval for {inside.mean():.0%} of transcripts")

# %%
# Estimated against true read counts
# ----------------------------------
# Left, estimates against the truth; right, the width of the intervals.
# Transcripts whose reads are all shared with other isoforms (orange) have
# the widest intervals. Absent transcripts are estimated at exactly zero
# when nothing supports them: expected counts below 1e-8 reads are truncated,
# as in kallisto and salmon.
transcripts_per_class = np.diff(X.indptr)
unique_reads = X.T @ (class_counts * (transcripts_per_class == 1))
shared_only = unique_reads == 0
absent = truth.counts == 0
print(f"{absent.sum()} transcripts have no reads; {np.sum(model.est_counts_[absent] == 0)} "
      "of them are estimated at exactly 0")
offset = 1.0  # log scale with zeros: plot counts + 1
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
for mask, color, label in [(~shared_only, "C0", "has unique reads"),
                           (shared_only, "C1", "only shared reads")]:
    left.errorbar(
        truth.counts[mask] + offset, model.est_counts_[mask] + offset,
        yerr=[np.clip(model.est_counts_[mask] - low[mask], 0, None),
              np.clip(high[mask] - model.est_counts_[mask], 0, None)],
        fmt="o", ms=3.5, color=color, ecolor=color, elinewidth=0.8, alpha=0.8, label=label,
    )
lim = [offset * 0.8, 2 * (truth.counts.max() + offset)]
left.plot(lim, lim, color="0.5", lw=0.8, zorder=0)
left.set(xscale="log", yscale="log", xlim=lim, ylim=lim,
         xlabel="true reads + 1", ylabel="estimated reads + 1 (95 % bootstrap interval)")
left.legend(loc="upper left")

# Right: the width of the interval relative to the estimate -- what the
# bootstrap adds to the point estimate.
expressed = model.est_counts_ > 1
rel_width = (high - low)[expressed] / model.est_counts_[expressed]
right.scatter(model.est_counts_[expressed], rel_width, s=12,
              c=np.where(shared_only[expressed], "C1", "C0"))
right.set(xscale="log", yscale="log", xlabel="estimated reads",
          ylabel="95 % interval width / estimate")
fig.tight_layout()
plt.show()
