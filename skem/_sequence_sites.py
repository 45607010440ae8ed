"""Whole sequences and motif sites: what the sequence model, its start search and its
estimator share.

:class:`SequenceData` holds sequences as a padded code matrix (the rows the
engine iterates over), :class:`SequenceMotifParams` a background and motifs,
:func:`log_erased_windows` the erasing weights of earlier motifs summed over
a site's positions, and :func:`log10_evalue` a motif's significance (MEME's
E-value). The model is :mod:`skem._motif_sequences`, its start search
:mod:`skem._sequence_search`, the estimator :mod:`skem.sequence_motifs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import gammaln
from scipy.stats import chi2

from ._em import AdditiveStats, RowData, chunk_rows
from .sequences import reverse_complement

__all__ = [
    "ERASE_FLOOR",
    "site_table",
    "SequenceData",
    "SequenceMotifParams",
    "SequenceStats",
    "log10_evalue",
    "log_chi2_sf",
    "log_erased_windows",
]

#: Smallest erasing weight kept in log space (a fully erased position).
ERASE_FLOOR = 1e-12


@dataclass(frozen=True)
class SequenceData(RowData):
    """Sequences as a padded code matrix.

    ``codes`` (n, max_length) holds letters ``0..A-1`` and ``A`` for a missing
    letter or padding (the gather index into log-ratio tables);
    ``lengths`` (n,) the sequence lengths; ``letter_counts`` (n, A) each
    sequence's letter counts; ``erased`` (n, max_length) the erasing weights
    of earlier motifs, or (n, 0) when none.
    """

    codes: np.ndarray = None
    lengths: np.ndarray = None
    letter_counts: np.ndarray = None
    erased: np.ndarray = None
    n_letters: int = 0
    _shared = ("n_letters",)


@dataclass(frozen=True)
class SequenceMotifParams:
    """Background (A,), motifs (a tuple of (w_k, A) PWMs) and their site probabilities (K,).

    EM fits one motif at a time (``len(pwms) == 1``); the fitted estimator's
    parameters hold all motifs, with ``log10_evalues`` (log10 E-value per
    motif), ``nsites`` (expected number of sites per motif in the training
    data), and the distribution of the training sequences' lengths
    (``lengths`` and their weighted frequencies ``length_probs``), from which
    sampling draws.
    """

    background: np.ndarray
    pwms: tuple
    site_probs: np.ndarray
    log10_evalues: np.ndarray = field(default=None)
    nsites: np.ndarray = field(default=None)
    lengths: np.ndarray = field(default=None)
    length_probs: np.ndarray = field(default=None)


@dataclass(frozen=True)
class SequenceStats(AdditiveStats):
    site_counts: np.ndarray  # (w, A) expected letters of sites, on the motif's strand
    background_counts: np.ndarray  # (A,) expected letters outside sites
    n_sites: float  # expected number of sites
    n_trials: float  # ZOOPS: sequences where a site fits; TCM: sites + background choices


def log_erased_windows(erased, width, n_starts):
    """Sum of the log erasing weights (floored at ERASE_FLOOR) over the ``width`` positions of
    each of the first ``n_starts`` windows of every row, shape (n, n_starts)."""
    log_erased = np.log(np.maximum(erased, ERASE_FLOOR))
    cumulative = np.concatenate([np.zeros((erased.shape[0], 1)), np.cumsum(log_erased, axis=1)],
                                axis=1)
    return cumulative[:, width : width + n_starts] - cumulative[:, :n_starts]



# ------------------------------------------------------------- significance


def log_chi2_sf(x, dof):
    """``log P(chi2_dof > x)``, accurate where scipy's underflows (far in the tail)."""
    value = chi2.logsf(x, dof)
    if np.isfinite(value):
        return float(value)
    # Upper incomplete gamma Q(s, y) ~ y^(s-1) e^-y / Gamma(s) (1 + (s-1)/y + ...), y = x/2.
    s, y = dof / 2.0, x / 2.0
    return float((s - 1) * np.log(y) - y - gammaln(s) + np.log1p((s - 1) / y))


def log10_evalue(site_counts, background, n_positions, dof_per_column):
    """MEME-style E-value (log10) of a motif from its expected site letter counts.

    The log-likelihood ratio of the site alignment against the background,
    ``llr = sum_(p,a) n_pa log(f_pa / b_a)`` with ``f`` the alignment's letter
    frequencies, is MEME's statistic (Bailey & Elkan 1995; Hertz & Stormo
    1999). Its p-value is approximated by Wilks' theorem, ``2 llr ~
    chi2(w (A - 1))`` (MEME convolves each column's exact distribution
    instead), and multiplied, as MEME does, by the number of ways to choose
    ``nsites`` of the ``n_positions`` site starts: the expected number of
    equally good alignments in random sequences of the same size.
    """
    nsites = site_counts.sum(axis=1).mean()
    if nsites <= 0:
        return 0.0
    frequencies = site_counts / np.maximum(site_counts.sum(axis=1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(site_counts > 0, site_counts * np.log(frequencies / background), 0.0)
    llr = max(float(terms.sum()), 0.0)
    w = site_counts.shape[0]
    log_p = log_chi2_sf(2.0 * llr, w * dof_per_column)
    n_positions = max(float(n_positions), nsites)
    log_choices = gammaln(n_positions + 1) - gammaln(nsites + 1) - gammaln(n_positions - nsites + 1)
    return float((log_p + log_choices) / np.log(10.0))


def site_table(model, params, codes, names, threshold, chunk_size):
    """The sites of every motif whose posterior reaches ``threshold`` (see
    :meth:`SequenceMotifMixture.sites`)."""
    data = model.prepare(codes, np.ones(codes.shape[0]))
    symbols = np.array(list(model.letters) + ["N", ""])
    step = chunk_rows(data, model, chunk_size)
    rows = []
    for k, pwm in enumerate(params.pwms):
        single = SequenceMotifParams(params.background, (pwm,), params.site_probs[k : k + 1])
        w = pwm.shape[0]
        for offset in range(0, data.n_rows, step):
            chunk = data.take(slice(offset, offset + step))
            post = model.site_posteriors(single, chunk)
            for i, j, s in np.argwhere(post >= max(threshold, 1e-300)):
                letters = "".join(symbols[codes[offset + i, j : j + w]])
                if s == 1:
                    letters = reverse_complement(letters, model.letters)
                rows.append((k + 1, names[offset + i], int(j), int(j + w), "+-"[s],
                             float(post[i, j, s]), letters, offset + i))
    columns = ["motif", "sequence", "start", "end", "strand", "posterior", "site", "_row"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values(["motif", "_row", "start", "strand"], kind="stable")
    return table.drop(columns="_row").reset_index(drop=True)
