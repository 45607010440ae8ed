"""
Finding a DNA motif and drawing its logo
========================================

Sequences of 100 nucleotides, most of which hide one site of a 10-letter
motif. :func:`skem.motifs.sequence_windows` cuts every sequence into all its
windows of the motif's width; :class:`skem.MotifMixture` with two components
(background and motif) fitted on the windows is MEME's TCM model. Its default
start searches observed windows for the motif as MEME does, so it finds the
motif rather than a shifted copy of it. :func:`skem.plotting.plot_logo` draws
the result with logomaker. Last, :class:`skem.SequenceMotifMixture` fits the
whole sequences with MEME's ZOOPS model.
"""

# %%
# Sequences with a planted motif
# ------------------------------
import matplotlib.pyplot as plt
import numpy as np

from skem import MotifMixture, SequenceMotifMixture
from skem.datasets import make_motif_sequences
from skem.motifs import sequence_windows
from skem.plotting import plot_logo

width = 10
sequences, planted, true_pwm = make_motif_sequences(
    200, 100, width=width, site_probability=0.8, random_state=3
)
windows = sequence_windows(sequences, width)
print(f"{len(sequences)} sequences, {len(planted)} planted sites, {len(windows)} windows")

# %%
# Fit the two-component mixture over the windows
# ----------------------------------------------
model = MotifMixture(n_components=2, random_state=0).fit(windows.windows)
true_consensus = "".join("ACGT"[i] for i in true_pwm.argmax(axis=1))
print("fitted consensus", model.consensus_[1])
print("true consensus  ", true_consensus)
print(f"fraction of windows that are sites: {model.weights_[1]:.4f} "
      f"(planted: {len(planted) / len(windows):.4f})")

# %%
# Logos of the true and the fitted motif
# --------------------------------------
# Letter heights are probability times the information content of the
# position (bits), the classic sequence logo.
fig, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True, sharey=True)
plot_logo(true_pwm, ax=axes[0])
axes[0].set_title("planted motif")
plot_logo(model, component=1, ax=axes[1])
axes[1].set_title("MotifMixture, component 1")
fig.tight_layout()
plt.show()

# %%
# Sites found, mapped back to the sequences
# -----------------------------------------
# :meth:`~skem.motifs.SequenceWindows.sites` keeps, per sequence, the windows
# whose site probability reaches 0.5 and do not overlap a better one.
sites = windows.sites(model.predict_proba(windows.windows)[:, 1])
found = sites.merge(planted, on=["sequence", "start"], how="inner")
print(sites.head().to_string(index=False))
print(f"{len(sites)} sites predicted, {len(found)} of them exactly at a planted site "
      f"(recall {len(found) / len(planted):.0%})")

# %%
# The same sequences, whole: MEME's ZOOPS model
# ---------------------------------------------
# :class:`skem.SequenceMotifMixture` takes the sequences themselves: the site's
# position in each sequence is the hidden variable, so a site is explained
# once (no overlapping windows), and ``sites`` reads the sequences' names from
# the X it is given.
whole = SequenceMotifMixture(width=width, mode="zoops", random_state=0).fit(sequences)
whole_sites = whole.sites(sequences)
found = whole_sites.merge(planted, on=["sequence", "start"], how="inner")
print("fitted consensus", whole.consensus_[1], f"E-value {whole.evalues_[0]:.2g}")
print(f"{len(whole_sites)} sites predicted, {len(found)} of them exactly at a planted site "
      f"(recall {len(found) / len(planted):.0%})")
