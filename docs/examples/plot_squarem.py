"""
Plain EM against SQUAREM
========================

Transcript quantification is where plain EM is slowest: isoforms that share
almost all their reads leave the likelihood nearly flat along some
directions, and EM creeps along them. ``accelerate="squarem"`` (the default
of :class:`skem.TranscriptQuantifier`) extrapolates along two successive EM
steps and keeps the extrapolation only when it does not lower the
likelihood. Here both run with every stopping rule but a very strict ``tol``
switched off, and ``lower_bounds_`` -- the objective after each pass over
the data -- shows how fast each gets to the top.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads

X, class_counts, truth = make_transcript_reads(
    100_000, n_genes=100, fragment_length=100, random_state=0
)
strict = dict(rel_tol=0.0, tol=1e-12, min_iter=0, max_iter=20_000)
fits = {
    accelerate: TranscriptQuantifier(
        lengths=truth.lengths, fragment_length=100, accelerate=accelerate, **strict
    ).fit(X, sample_weight=class_counts)
    for accelerate in ("none", "squarem")
}
best = max(fit.lower_bound_ for fit in fits.values())
for name, fit in fits.items():
    print(f"{name:8s} {fit.n_iter_:6d} passes over the data, "
          f"final log-likelihood per read {fit.lower_bound_:.12f}")

# %%
# The gap to the best log-likelihood reached, against passes over the data
# (``lower_bounds_`` has one value per pass).
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, fit in fits.items():
    gap = np.maximum(best - np.asarray(fit.lower_bounds_), 1e-13)
    passes = np.arange(1, gap.size + 1)
    ax.plot(passes, gap, label=f"{name} ({fit.n_iter_} passes)")
ax.set(xscale="log", yscale="log", xlabel="passes over the data",
       ylabel="best - log-likelihood per read")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# With the default stopping rules (kallisto's relative-change rule, checked
# after 50 iterations) both stop much earlier. The estimates they stop at
# differ by little compared with the bootstrap standard deviation of each
# transcript; SQUAREM stops closer to the maximum. See :doc:`/performance`
# for the benchmark.
default = {
    accelerate: TranscriptQuantifier(
        lengths=truth.lengths, fragment_length=100, accelerate=accelerate,
        n_bootstraps=20 if accelerate == "squarem" else 0, random_state=0,
    ).fit(X, sample_weight=class_counts)
    for accelerate in ("none", "squarem")
}
plain, fast = default["none"], default["squarem"]
sd = fast.abundance_["est_counts_sd"].to_numpy()
difference = np.abs(plain.est_counts_ - fast.est_counts_)
expressed = fast.est_counts_ > 10
print(f"passes: plain {plain.n_iter_}, SQUAREM {fast.n_iter_}")
print(f"log-likelihood per read, SQUAREM - plain: {fast.lower_bound_ - plain.lower_bound_:+.2e}")
print("largest |plain - SQUAREM| / bootstrap sd over transcripts with > 10 reads: "
      f"{np.max(difference[expressed] / sd[expressed]):.3f}")
