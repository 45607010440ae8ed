"""Alignment likelihoods: score, position and fragment length of each alignment -> class rows.

Pure numpy on the compact alignments of :mod:`skem.io._bam_scan` (no
pysam). The model of one fragment ``n`` and one transcript ``k`` (of length
``L``) it aligns to, with ``P`` the fragment-length distribution on
``1..F``::

    p(n | k) = p_error(n, k) * p_position(n | k)

Error term: ``exp(score_scale * (AS - best AS of the fragment))`` from the
aligner's ``AS`` tag (for a pair, the sum of the mates' scores; salmon's
``--scoreExp`` is the same scale, 1 by default; here chosen by default from
the aligner's mismatch penalty in the @PG header line, see
:func:`auto_score_scale`). Without an ``AS`` tag the score is ``-6 NM``
(bowtie2's largest mismatch penalty), without either the term is 1.
Alignments whose error term is below ``min_likelihood_ratio`` are dropped
(the role of salmon's ``--minScoreFraction``).

Position term: the fragment's length ``f`` is drawn from ``P`` truncated at
``L`` and its start uniformly among the ``L - f + 1`` places where it fits::

    paired-end (proper pair, fragment of length f):
        p_position = P(f) / P(f <= L) / (L - f + 1)
    single-end (read whose 5' end leaves room for fragments up to m bases):
        p_position = sum_{f <= min(m, L)} P(f) / (L - f + 1) / P(f <= L)

These are the probabilities of the observed start (and length) under the
same model whose expected number of starts is the effective length
(:func:`skem.transcripts.effective_lengths_from_pmf`), so the fit of the
classes with ``x_includes_length=True`` and those effective lengths is the
maximum-likelihood estimate of that model. Both terms are computed relative
to ``P(f <= L)`` in log space, so that a distribution whose mass below
``L`` is far out in its tail gives the right (tiny) probabilities rather
than 0 / 0.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp

from ..transcripts import fragment_log_pmf
from ._bam_scan import NM_PENALTY, PAIR

__all__ = [
    "DEFAULT_SCORE_SCALE",
    "MISMATCH_LOG_LIKELIHOOD",
    "STRANDED_FRACTION",
    "TABLE_ENTRIES",
    "auto_score_scale",
    "detect_library_type",
    "learned_log_pmf",
    "likelihood_rows",
    "position_log_prob",
    "single_read_log_prob",
]

#: Log-likelihood ratio of a mismatch at 1 % sequencing error, log(0.99 / (0.01 / 3)): the score
#: scale is this over the aligner's cost of a mismatch in score points.
MISMATCH_LOG_LIKELIHOOD = float(np.log(3 * 0.99 / 0.01))
#: Score scale without a recognized aligner in the header (salmon's ``--scoreExp`` default).
DEFAULT_SCORE_SCALE = 1.0
#: Auto-detection calls a library stranded when more than this fraction of unique fragments agree.
STRANDED_FRACTION = 0.8
#: Entries of the (transcript lengths x fragment lengths) table of single-read sums built at a
#: time (8 MB of float64 per array).
TABLE_ENTRIES = 1 << 20


def detect_library_type(blocks, requested, paired):
    """The library type to use: the one requested, or detected from uniquely aligned fragments."""
    prefix = "I" if paired else ""
    if requested != "A":
        return prefix + requested.lstrip("I")
    n_unique = n_forward = 0
    for block in blocks:
        unique = block["unique"]
        n_unique += int(np.count_nonzero(unique))
        n_forward += int(np.count_nonzero(block["forward"][unique]))
    if not n_unique:
        return prefix + "U"
    forward = n_forward / n_unique
    if forward > STRANDED_FRACTION:
        return prefix + "SF"
    if forward < 1 - STRANDED_FRACTION:
        return prefix + "SR"
    return prefix + "U"


def learned_log_pmf(blocks, support):
    """Fragment-length distribution of the fragments aligned uniquely as a proper pair.

    A fragment counts when its only alignment is one proper pair made of all
    its usable records (no secondary alignment, no other mate record), as
    salmon and RSEM learn it. The histogram is mixed with 1 % of a normal
    density of the same mean and sd, so that lengths not seen are unlikely
    but possible.

    Returns
    -------
    log_pmf : ndarray of shape (support + 1,)
        ``log P(f)`` for ``f = 0..support``.
    """
    histogram = np.zeros(support + 1)
    for block in blocks:
        lengths = block["extent"][block["unique"] & (block["kind"] == PAIR)].astype(np.int64)
        lengths = lengths[(lengths >= 1) & (lengths <= support)]
        histogram += np.bincount(lengths, minlength=support + 1)
    n = histogram.sum()
    if n < 10:
        raise ValueError(
            f"only {int(n)} fragments align uniquely as a proper pair: too few to learn the "
            "fragment-length distribution; give fragment_length and fragment_length_sd."
        )
    f = np.arange(support + 1)
    mean = float(histogram @ f / n)
    sd = max(float(np.sqrt(histogram @ (f - mean) ** 2 / n)), 1.0)
    normal = np.exp(fragment_log_pmf(mean, sd)[: support + 1])
    pmf = 0.99 * histogram / n + 0.01 * normal / normal.sum()
    with np.errstate(divide="ignore"):
        return np.log(pmf)


def _log_mass(log_pmf):
    """``log P(f <= l)`` for ``l = 0..F`` (up to the pmf's constant); -inf where no length fits."""
    return np.logaddexp.accumulate(log_pmf)


def position_log_prob(alignments, lengths, log_pmf):
    """``log p_position`` of each alignment (see the module's docstring); -inf where impossible.

    Parameters
    ----------
    alignments : dict of ndarray
        ``transcript``, ``kind`` and ``extent`` of each alignment
        (:func:`skem.io._bam_scan.fragment_alignments`).
    lengths : ndarray of shape (n_transcripts,)
        The transcripts' lengths.
    log_pmf : ndarray of shape (F + 1,)
        ``log P(f)`` up to a constant for ``f = 0..F``.

    Returns
    -------
    ndarray of shape (n_alignments,)
    """
    support = log_pmf.shape[0] - 1
    log_mass = _log_mass(log_pmf)
    L = lengths[alignments["transcript"]].astype(np.int64)
    out = np.empty(L.shape)
    pair = alignments["kind"] == PAIR
    f = alignments["extent"][pair].astype(np.int64)  # >= 1: a pair covers its mates
    Lp = L[pair]
    ok = f <= np.minimum(Lp, support)
    ok[ok] = np.isfinite(log_pmf[f[ok]])  # P(f) > 0, so P(f <= L) > 0 too
    values = np.full(f.shape, -np.inf)
    values[ok] = log_pmf[f[ok]] - log_mass[np.minimum(Lp[ok], support)] - np.log(Lp[ok] - f[ok] + 1)
    out[pair] = values
    # Single reads: room m for the fragment from the read's 5' end to the transcript's end.
    single = np.flatnonzero(~pair)
    if single.size:
        out[single] = single_read_log_prob(alignments["extent"][single], alignments["transcript"][single],
                                           lengths, log_pmf)
    return out


def single_read_log_prob(room, transcript, lengths, log_pmf, *, table_entries=TABLE_ENTRIES):
    """``log sum_{f <= min(room, L)} P(f) / (L - f + 1) / P(f <= L)`` for each read.

    Linear in the reads: for each distinct length ``L`` of the transcripts
    the reads are on, the sums for every room ``m = 0..F`` are one
    cumulative sum over the fragment lengths (a table of distinct lengths x
    ``F + 1``, built ``table_entries`` entries at a time), and each read
    looks its sum up. Each term is taken relative to ``P(f <= L)`` in log
    space, so it lies in [0, 1] whatever the distribution's scale.

    Parameters
    ----------
    room : ndarray of int of shape (n_reads,)
        Longest fragment that fits from the read's 5' end.
    transcript : ndarray of int of shape (n_reads,)
        The transcript each read is on.
    lengths : ndarray of int of shape (n_transcripts,)
        The transcripts' lengths.
    log_pmf : ndarray of shape (F + 1,)
        ``log P(f)`` up to a constant for ``f = 0..F``.
    table_entries : int, default=TABLE_ENTRIES
        Entries of the table built at a time (bounds its memory).

    Returns
    -------
    ndarray of shape (n_reads,)
        -inf where no fragment fits.
    """
    support = log_pmf.shape[0] - 1
    log_mass = _log_mass(log_pmf)
    frag = np.arange(1, support + 1)
    # distinct lengths of the transcripts present, without sorting the reads
    present = np.flatnonzero(np.bincount(transcript, minlength=len(lengths)))
    distinct, row = np.unique(lengths[present], return_inverse=True)
    row_of = np.zeros(len(lengths), dtype=np.intp)
    row_of[present] = row.reshape(-1)
    which = row_of[transcript]
    L = lengths[transcript]
    # the sum runs over f <= min(room, L, F): rooms past L or F index the table's last column
    column = np.clip(np.minimum(room, L), 0, support).astype(np.intp)
    out = np.empty(room.shape)
    step = max(1, table_entries // (support + 1))
    if distinct.size > step:  # several tables: the reads of each, by sorting them by length
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(distinct.size + 1))
    else:
        order, bounds = np.arange(which.size), np.r_[0, np.full(distinct.size, which.size)]
    for begin in range(0, distinct.size, step):
        chunk = distinct[begin:begin + step, None]
        upto = np.minimum(chunk, support)
        with np.errstate(invalid="ignore"):  # -inf - -inf where no fragment fits L
            exponent = log_pmf[None, 1:] - log_mass[upto]  # <= 0 where f <= L
        exponent[(frag[None, :] > chunk) | np.isnan(exponent)] = -np.inf
        terms = np.exp(exponent, out=exponent)
        terms /= np.maximum(chunk - frag[None, :] + 1, 1)
        table = np.zeros((chunk.shape[0], support + 1))
        np.cumsum(terms, axis=1, out=table[:, 1:])
        reads = order[bounds[begin]:bounds[min(begin + step, distinct.size)]]
        with np.errstate(divide="ignore"):  # no fragment fits: log 0 = -inf, dropped
            out[reads] = np.log(table[which[reads] - begin, column[reads]])
    return out


def likelihood_rows(alignments, lengths, log_pmf, score_scale, min_likelihood_ratio):
    """Likelihood rows (fragments with a valid alignment x transcripts) of one block of alignments.

    The error term is relative to the fragment's best alignment; each row is
    divided by its largest entry; several positions on one transcript add up.

    Parameters
    ----------
    alignments : dict of ndarray
        One block of :func:`skem.io._bam_scan.fragment_alignments`.
    lengths : ndarray of shape (n_transcripts,)
    log_pmf : ndarray of shape (F + 1,)
    score_scale : float
    min_likelihood_ratio : float

    Returns
    -------
    csr_matrix of shape (n_fragments_with_a_valid_alignment, n_transcripts)
    """
    fragment = alignments["fragment"]
    score = alignments["score"].astype(np.float64)
    # scores below the best first (exact for integer scores), then scaled: fragments whose
    # scores differ alike get bit-identical rows, so they share a class (scaling first
    # splits them by rounding: s * -5 - s * -3 need not equal s * -2)
    score -= _per_run(np.maximum, score, _run_starts(fragment))
    log_weight = score_scale * score
    keep = log_weight >= np.log(min_likelihood_ratio) if min_likelihood_ratio > 0 else np.ones(fragment.size, bool)
    log_weight += position_log_prob(alignments, lengths, log_pmf)
    keep &= np.isfinite(log_weight)
    kept_fragment, transcript, log_weight = fragment[keep], alignments["transcript"][keep], log_weight[keep]
    # one row per fragment left (sorted by fragment): CSR built directly, each row over its maximum
    row_starts = _run_starts(kept_fragment)
    rows = sp.csr_matrix((np.exp(log_weight - _per_run(np.maximum, log_weight, row_starts)), transcript,
                          np.r_[row_starts, kept_fragment.size]), shape=(row_starts.size, len(lengths)))
    rows.sum_duplicates()  # several positions on one transcript add up
    return rows


def _run_starts(ids):
    """Where each run of equal values of ``ids`` starts (``ids`` sorted)."""
    if not ids.size:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])


def _per_run(ufunc, values, starts):
    """``ufunc`` reduced over each run of ``values`` (runs from ``starts``), repeated to its length."""
    if not values.size:
        return values
    return np.repeat(ufunc.reduceat(values, starts), np.diff(np.r_[starts, values.size]))


#: Aligners whose @PG line sets the score scale: the cost of one mismatch in AS points, from the
#: command line's options (name, default) -> cost. bowtie2 and HISAT2 subtract MX (``--mp MX,MN``,
#: at base quality 40) and, in bowtie2's ``--local`` mode, also lose the match bonus ``--ma``;
#: BWA-MEM loses the match score ``-A`` and subtracts ``-B``; STAR scores +1/-1 per
#: match/mismatch; salmon's selective alignment ``--ma`` and ``--mp``.
_ALIGNERS = {
    "bowtie2": lambda cl: _option(cl, "--mp", 6) + (_option(cl, "--ma", 2) if "--local" in cl.split() else 0),
    "hisat2": lambda cl: _option(cl, "--mp", 6),
    "bwa": lambda cl: _option(cl, "-A", 1) + _option(cl, "-B", 4),
    "star": lambda cl: 2.0,
    "salmon": lambda cl: _option(cl, "--ma", 2) + abs(_option(cl, "--mp", -4)),
}


def _option(command_line, option, default):
    """The first number after ``option`` (``--mp 1,1``, ``--mp=1``, ``-B4``) in a command line, or default."""
    found = re.search(rf"(?:^|\s){re.escape(option)}(?:=|\s*)(-?\d+(?:\.\d+)?)", command_line)
    return float(found.group(1)) if found else float(default)


def auto_score_scale(header, has_as=True):
    """The score scale for a file's aligner, from its header's @PG lines.

    The scale is :data:`MISMATCH_LOG_LIKELIHOOD` (a mismatch at 1 % error:
    5.69) over the aligner's cost of a mismatch in ``AS`` points, read from
    the first @PG line of a known aligner (its ``ID`` or ``PN``: bowtie2,
    hisat2, bwa, STAR, salmon) and the options of its ``CL``: bowtie2 with
    default ``--mp 6,2`` gives 0.95, RSEM's ``--mp 1,1`` 5.69; HISAT2 as
    bowtie2; BWA-MEM ``A + B`` (5 by default): 1.14; STAR 2: 2.85; salmon's
    ``--ma 2 --mp -4``: 0.95. Files without ``AS`` tags score ``-6 NM``:
    their scale is 5.69 / 6 whatever the aligner. Otherwise (no @PG line of a
    known aligner) :data:`DEFAULT_SCORE_SCALE`, salmon's ``--scoreExp``
    default of 1.

    Parameters
    ----------
    header : dict
        The SAM header as ``pysam.AlignmentHeader.to_dict()`` gives it.
    has_as : bool, default=True
        Whether the records have ``AS`` tags.

    Returns
    -------
    scale : float
        Log-likelihood per ``AS`` point.
    source : str
        What the scale was chosen from, for messages.
    """
    if not has_as:
        return MISMATCH_LOG_LIKELIHOOD / NM_PENALTY, f"no AS tags: NM at -{NM_PENALTY:g} per mismatch"
    for program in header.get("PG", []):
        for field in ("PN", "ID"):
            name = str(program.get(field, "")).lower()
            aligner = next((a for a in _ALIGNERS if name == a or name.startswith((a + ".", a + "-"))),
                           None)
            if aligner is not None:
                cost = _ALIGNERS[aligner](str(program.get("CL", "")))
                if cost > 0:
                    return (MISMATCH_LOG_LIKELIHOOD / cost,
                            f"@PG {program.get(field)}: a mismatch costs {cost:g} AS points")
    return DEFAULT_SCORE_SCALE, "no known aligner in the @PG lines: salmon's default"
