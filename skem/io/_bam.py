"""Alignment likelihoods from a BAM/SAM file, like salmon's alignment mode and RSEM.

One pass over the records through pysam keeps a few numbers per alignment
in compact arrays (no Python object per alignment survives its record); the
likelihoods are then computed with numpy and the fragments collapsed into
weighted equivalence classes (fragments with identical likelihood rows), so
the EM costs O(non-zeros of the classes).

The model of one fragment ``n`` and one transcript ``k`` (of length ``L``)
it aligns to, with ``P`` the fragment-length distribution on ``1..F``::

    p(n | k) = p_error(n, k) * p_position(n | k)

Error term: ``exp(score_scale * (AS - best AS of the fragment))`` from the
aligner's ``AS`` tag (for a pair, the sum of the mates' scores; salmon's
``--scoreExp`` is the same scale, 1 by default; here chosen by default from
the aligner's mismatch penalty in the @PG header line, see
:func:`auto_score_scale`). Without an ``AS`` tag the
score is ``-6 NM`` (bowtie2's largest mismatch penalty), without either the
term is 1. Alignments whose error term is below ``min_likelihood_ratio``
are dropped (the role of salmon's ``--minScoreFraction``).

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
maximum-likelihood estimate of that model.
"""

from __future__ import annotations

import os
import re
import sys
from array import array
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..transcripts import (
    MAX_FRAGMENT_LENGTH,
    effective_lengths_from_pmf,
    equivalence_classes,
    fragment_log_pmf,
)
from ._library_types import LIBRARY_TYPES
from ._text import check_utf8

__all__ = ["AlignmentClasses", "LIBRARY_TYPES", "auto_score_scale", "read_alignments"]

#: Score per mismatch when the records have NM but no AS tag (bowtie2's largest mismatch penalty).
NM_PENALTY = 6.0
#: Log-likelihood ratio of a mismatch at 1 % sequencing error, log(0.99 / (0.01 / 3)): the score
#: scale is this over the aligner's cost of a mismatch in score points.
MISMATCH_LOG_LIKELIHOOD = float(np.log(3 * 0.99 / 0.01))
#: Score scale without a recognized aligner in the header (salmon's ``--scoreExp`` default).
DEFAULT_SCORE_SCALE = 1.0
#: salmon's prior fragment-length distribution, used for single-end reads without one.
DEFAULT_FRAGMENT = (250.0, 25.0)
#: Auto-detection calls a library stranded when more than this fraction of unique fragments agree.
STRANDED_FRACTION = 0.8

# Kinds of emitted alignments.
_PAIR, _SINGLE = 0, 1
#: Flags of records that carry no usable alignment: unmapped (0x4), QC-failed (0x200) and
#: supplementary (0x800). Secondary alignments (0x100) are alternatives, kept.
_UNUSABLE_FLAGS = 0xA04
#: Per-record columns of the scan and their array typecodes: int32 ids and positions, uint16 flag,
#: float32 score (AS is an integer, exact in float32 up to 2**24).
_RECORD_COLUMNS = {"fragment": "i", "flag": "H", "transcript": "i", "start": "i", "end": "i",
                   "mate_start": "i", "score": "f"}
#: Records of a name-grouped file turned into compact alignments at a time (bounds the scan's
#: per-record columns; the alignments of all blocks are what stays).
_BLOCK_RECORDS = 1 << 17


class AlignmentClasses(NamedTuple):
    """Fragments of a BAM/SAM file as weighted equivalence classes of alignment likelihoods.

    Fit with ``TranscriptQuantifier(x_includes_length=True,
    effective_lengths=effective_lengths, transcript_names=transcript_names)``
    and ``sample_weight=counts``.

    Attributes
    ----------
    X : csr_matrix of shape (n_classes, n_transcripts)
        Alignment likelihood of each class on each transcript (error term
        times position term, each row divided by its largest entry).
    counts : ndarray of shape (n_classes,)
        Fragments in each class.
    transcript_names : ndarray of str of shape (n_transcripts,)
    transcript_lengths : ndarray of shape (n_transcripts,)
    effective_lengths : ndarray of shape (n_transcripts,)
        Under the fragment-length distribution used.
    fragment_length_pmf : ndarray of shape (F + 1,)
        ``P(f)`` for ``f = 0..F`` (learned from unique proper pairs, or the
        normal density given or salmon's default for single-end reads).
    library_type : str
        The library type used (detected when "A" was asked).
    paired : bool
        Whether the fragments were read as pairs.
    n_fragments : int
        Fragments (reads or pairs) in the file.
    n_unassigned : int
        Fragments with no valid alignment: unmapped, only supplementary or
        filtered alignments, or only alignments of the wrong strand.
    score_scale : float
        The score scale used (given, or chosen by :func:`auto_score_scale`).
    score_scale_source : str
        Where it came from: "given", or what the header said.
    """

    X: sp.csr_matrix
    counts: np.ndarray
    transcript_names: np.ndarray
    transcript_lengths: np.ndarray
    effective_lengths: np.ndarray
    fragment_length_pmf: np.ndarray
    library_type: str
    paired: bool
    n_fragments: int
    n_unassigned: int
    score_scale: float
    score_scale_source: str


def _import_pysam():
    try:
        import pysam
    except ImportError as exc:
        raise ImportError(
            "reading BAM/SAM files needs pysam; install the 'bam' extra: pip install 'skem[bam]'."
        ) from exc
    return pysam


def _score_without_as(record):
    """The score of a record that has no ``AS`` tag: ``-6 NM``, or 0 without ``NM`` either."""
    try:
        return -NM_PENALTY * record.get_tag("NM")
    except KeyError:
        return 0.0


class _RecordError(Exception):
    """A record that pysam read but skem refuses (raised past pysam's own errors)."""


@contextmanager
def _unraisable_close_failures_silenced():
    """Drop pysam's "Closing failed" OSError from ``AlignmentFile.__dealloc__``.

    When ``pysam.AlignmentFile(path)`` fails on a damaged file, the half-built
    object is freed inside the call and htslib's close of the damaged stream
    fails too; that error cannot be raised, so Python reports it as
    unraisable. The file's error, raised as a ValueError, says what is wrong.
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, OSError) and "Closing failed" in str(unraisable.exc_value)):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextmanager
def _alignment_file(path):
    """pysam's AlignmentFile on a SAM/BAM file, closed on exit; errors name the file and the place.

    Yields ``(bam, where)``: ``where(n)`` places record ``n`` (1-based), as
    its line for SAM and by number for BAM. The body raises ``_RecordError``
    for a record it refuses (it becomes a ValueError) and places pysam's
    errors with :func:`_invalid`. Bytes that are not UTF-8 in a SAM file are
    refused first, naming their line: htslib accepts some of them (in
    RNEXT, as an unknown reference) and places others nowhere.
    """
    pysam = _import_pysam()
    path = os.fspath(path)
    with open(path, "rb") as probe:
        is_text = probe.read(2) != b"\x1f\x8b"  # BAM and bgzipped SAM are BGZF-compressed
    if is_text:
        check_utf8(path)
    save = pysam.set_verbosity(0)  # htslib's warnings on stderr: skem raises its own errors
    try:
        with _unraisable_close_failures_silenced():
            try:
                bam = pysam.AlignmentFile(path, "r")
            except (OSError, ValueError) as exc:
                raise _invalid(path, "header", exc) from None
        try:
            header_lines = len(str(bam.header).splitlines()) if is_text else 0
            yield bam, (lambda n: f"line {header_lines + n}") if is_text else (lambda n: f"record {n}")
        except _RecordError as exc:
            raise ValueError(str(exc)) from None
        finally:
            with _unraisable_close_failures_silenced():
                try:
                    bam.close()
                except OSError:
                    pass  # the file's own error, if any, is being raised
    finally:
        pysam.set_verbosity(save)


def _invalid(path, where, exc):
    """The ValueError for pysam's error ``exc`` at ``where`` (a line, a record or the header)."""
    return ValueError(f"{path}, {where}: not a valid SAM/BAM file ({exc}).")


def _missing_reference(path, place, name):
    """The error for a mapped record whose reference is not in the header (or that has no CIGAR)."""
    return _RecordError(
        f"{path}, {place}: read {name!r} is mapped to a reference that is not among the header's "
        "@SQ lines, or has no CIGAR."
    )


def _skipped(record, flag):
    """Whether a record carries no alignment to use: unmapped, QC-failed or supplementary.

    The record filter of :func:`read_alignments` and :func:`skem.io.read_bam`.
    htslib turns a record on a reference missing from the header into an
    unmapped one (with a warning we silence) but keeps its CIGAR: such a
    record is not skipped, so that the caller's check of its reference
    (:func:`_missing_reference`) refuses it.
    """
    return flag & _UNUSABLE_FLAGS and not (flag & 0x4 and record.cigartuples)


def _new_block():
    """Empty per-record columns and their bound ``append`` methods, in ``_RECORD_COLUMNS`` order."""
    columns = {name: array(code) for name, code in _RECORD_COLUMNS.items()}
    return columns, tuple(column.append for column in columns.values())


def _as_arrays(columns):
    """numpy views of typed-array columns (no copy)."""
    return {name: np.frombuffer(values, dtype=values.typecode) if len(values) else
            np.zeros(0, dtype=values.typecode) for name, values in columns.items()}


def _scan(path):
    """One pass over the records, keeping each fragment's alignments in compact arrays.

    Returns the header (as a dict), the transcripts' names and lengths, the
    number of fragments (distinct query names), the alignments as a list of
    blocks (dicts of arrays, see :func:`_alignments`; each fragment's
    alignments in one block), whether any record was paired and whether any
    record had an ``AS`` tag.

    Memory: a name-grouped file (records of a fragment adjacent, as aligners
    write them) is turned into alignments every ``_BLOCK_RECORDS`` records,
    so what grows with the file is about 9 bytes per paired record (18 per
    alignment: a pair is one). A coordinate-sorted file must be held whole
    (26 bytes per record in typed arrays) plus a dict from each query name
    to its fragment number (a Python string and int per fragment, about
    100 bytes), since a fragment's records may be anywhere in it.

    The loop is most of the cost of reading a BAM, so it does as little per
    record as it can: each field read once (``get_tag`` without ``has_tag``,
    the NM fallback only when AS is missing), stored by bound ``append``
    methods of typed arrays (measured faster than one ``extend`` of a tuple
    or a list converted in chunks), the file iterated directly rather than
    through ``fetch``. See benchmarks/bench_bam.py for its cost against
    plain pysam passes.
    """
    path = os.fspath(path)
    blocks, paired, n_records, n_kept, n_without_as = [], False, 0, 0, 0
    columns, (fragment_, flag_, transcript_, start_, end_, mate_, score_) = _new_block()

    def flush():
        nonlocal paired, n_kept
        records = _as_arrays(columns)
        paired |= bool(np.any(records["flag"] & 0x1))
        n_kept += records["fragment"].size
        if records["fragment"].size:
            blocks.append(_alignments(records, transcript_lengths))

    with _alignment_file(path) as (bam, where):
        header = bam.header.to_dict()
        names = np.asarray(bam.references, dtype=object)
        lengths = np.asarray(bam.lengths, dtype=float)
        transcript_lengths = np.asarray(bam.lengths, dtype=np.int64)
        # Records of one fragment are adjacent unless the file is coordinate-sorted:
        # a change of name starts a new fragment; otherwise names are looked up.
        grouped = header.get("HD", {}).get("SO") != "coordinate"
        fragment_of, current, fragment = {}, None, -1
        block_end = _BLOCK_RECORDS
        try:
            for record in bam:
                n_records += 1
                name = record.query_name
                if grouped:
                    if name != current:
                        current, fragment = name, fragment + 1
                        if n_records > block_end:  # the block ends between fragments
                            flush()
                            columns, (fragment_, flag_, transcript_, start_, end_, mate_, score_) = (
                                _new_block())
                            block_end = n_records + _BLOCK_RECORDS
                else:
                    fragment = fragment_of.setdefault(name, len(fragment_of))
                flag = record.flag
                if _skipped(record, flag):
                    continue
                transcript = record.reference_id
                end = record.reference_end
                if transcript < 0 or end is None:
                    raise _missing_reference(path, where(n_records), name)
                fragment_(fragment)
                flag_(flag)
                transcript_(transcript)
                start_(record.reference_start)
                end_(end)
                mate_(record.next_reference_start)
                try:
                    score_(record.get_tag("AS"))
                except KeyError:
                    n_without_as += 1
                    score_(_score_without_as(record))
        except UnicodeDecodeError as exc:  # decoding a field of the record read (BAM)
            raise _invalid(path, where(n_records), exc) from None
        except (OSError, ValueError) as exc:  # htslib's reading of the next record
            raise _invalid(path, where(n_records + 1), exc) from None
        n_fragments = fragment + 1 if grouped else len(fragment_of)
        del fragment_of
        flush()
    if len(names) == 0:
        raise ValueError(f"{path}, header: no @SQ reference sequences (transcripts).")
    return header, names, lengths, n_fragments, blocks, paired, n_without_as < n_kept


def _alignments(records, lengths):
    """Fragment alignments from the records: proper pairs, else each aligned record as a single read.

    Returns a dict of arrays ``fragment, transcript, kind, extent, forward, score``
    sorted by fragment, in compact types (int32, int8, int32, bool, float32: 18 bytes
    per alignment). ``extent`` is what the position term needs: a pair's fragment
    length, or for a single read the room from its 5' end to the end of the
    transcript on its strand's side (``lengths``: the transcripts' lengths).
    ``forward``: read 1, or the single read, lies on the transcript's strand.
    """
    flag = records["flag"]
    paired = (flag & 0x1) != 0
    proper = paired & ((flag & 0x2) != 0)
    first = proper & ((flag & 0x40) != 0)
    second = proper & ((flag & 0x80) != 0)
    # A proper pair: read 1 and read 2 of one fragment on one transcript, each at the
    # other's mate position. Join read 1 records to read 2 records on those four keys.
    keys = ("fragment", "transcript", "start", "mate_start")
    ones = pd.DataFrame({k: records[k][first] for k in keys})
    ones["row1"] = np.flatnonzero(first)
    twos = pd.DataFrame({"fragment": records["fragment"][second],
                         "transcript": records["transcript"][second],
                         "start": records["mate_start"][second],
                         "mate_start": records["start"][second]})
    twos["row2"] = np.flatnonzero(second)
    pairs = ones.merge(twos, on=list(keys), how="inner")
    del ones, twos
    row1, row2 = pairs["row1"].to_numpy(), pairs["row2"].to_numpy()
    del pairs
    # Fragments with no proper pair: every aligned record stands alone (orphan mates too).
    fragment = records["fragment"]
    low = int(fragment.min(initial=0))
    has_pair = np.zeros(int(fragment.max(initial=-1)) + 1 - low, dtype=bool)
    has_pair[fragment[row1] - low] = True
    alone = np.flatnonzero(~has_pair[fragment - low])
    on_forward = (flag[alone] & 0x10) == 0
    # a read on the forward strand has the rest of the transcript ahead; on the reverse
    # strand, its 5' end is its end and the fragment reaches back towards position 0
    transcript_alone = records["transcript"][alone]
    room = np.where(on_forward, lengths[transcript_alone] - records["start"][alone], records["end"][alone])
    forward_alone = on_forward ^ ((flag[alone] & 0x80) != 0)  # read 2 forward means read 1 reverse
    score = records["score"]
    out = {
        "fragment": np.concatenate([fragment[row1], fragment[alone]]),
        "transcript": np.concatenate([records["transcript"][row1], transcript_alone]),
        "kind": np.concatenate([np.full(row1.size, _PAIR, np.int8), np.full(alone.size, _SINGLE, np.int8)]),
        "extent": np.concatenate([np.maximum(records["end"][row1], records["end"][row2])
                                  - np.minimum(records["start"][row1], records["start"][row2]),
                                  room]).astype(np.int32),
        "forward": np.concatenate([(flag[row1] & 0x10) == 0, forward_alone]),
        "score": np.concatenate([score[row1] + score[row2], score[alone]]),
    }
    order = np.argsort(out["fragment"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _aligned_once(fragment):
    """Whether each alignment is its fragment's only one (``fragment`` sorted)."""
    if fragment.size == 0:
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, fragment[1:] != fragment[:-1]])
    runs = np.diff(np.r_[starts, fragment.size])
    return np.repeat(runs == 1, runs)


def _library_type(blocks, requested, paired):
    """The library type to use: the one requested, or detected from fragments aligned once."""
    prefix = "I" if paired else ""
    if requested != "A":
        return prefix + requested.lstrip("I")
    n_unique = n_forward = 0
    for block in blocks:
        unique = _aligned_once(block["fragment"])
        n_unique += int(unique.sum())
        n_forward += int(np.count_nonzero(block["forward"][unique]))
    if not n_unique:
        return prefix + "U"
    forward = n_forward / n_unique
    if forward > STRANDED_FRACTION:
        return prefix + "SF"
    if forward < 1 - STRANDED_FRACTION:
        return prefix + "SR"
    return prefix + "U"


def _learned_pmf(blocks, support):
    """Fragment-length distribution of the fragments aligned once as a proper pair.

    The histogram is mixed with 1 % of a normal density of the same mean and sd,
    so that lengths not seen are unlikely but possible.
    """
    histogram = np.zeros(support + 1)
    for block in blocks:
        once = _aligned_once(block["fragment"]) & (block["kind"] == _PAIR)
        lengths = block["extent"][once].astype(np.int64)
        lengths = lengths[(lengths >= 1) & (lengths <= support)]
        histogram += np.bincount(lengths, minlength=support + 1)
    n = histogram.sum()
    if n < 10:
        raise ValueError(
            f"only {int(n)} fragments align once as a proper pair: too few to learn the "
            "fragment-length distribution; give fragment_length and fragment_length_sd."
        )
    f = np.arange(support + 1)
    mean = float(histogram @ f / n)
    sd = max(float(np.sqrt(histogram @ (f - mean) ** 2 / n)), 1.0)
    normal = np.exp(fragment_log_pmf(mean, sd)[: support + 1])
    pmf = 0.99 * histogram / n + 0.01 * normal / normal.sum()
    with np.errstate(divide="ignore"):
        return np.log(pmf)


def _position_log_prob(alignments, lengths, log_pmf):
    """``log p_position`` of each alignment (see the module's docstring); -inf where impossible."""
    support = log_pmf.shape[0] - 1
    pmf = np.exp(log_pmf - np.max(log_pmf))
    mass = np.cumsum(pmf)  # P(f <= L), unnormalized like pmf
    L = lengths[alignments["transcript"]].astype(np.int64)
    total = mass[np.minimum(L, support)]
    out = np.full(L.shape, -np.inf)
    pair = alignments["kind"] == _PAIR
    f = alignments["extent"][pair]
    Lp = L[pair]
    ok = (f >= 1) & (f <= np.minimum(Lp, support))
    with np.errstate(divide="ignore"):
        values = np.full(f.shape, -np.inf)
        values[ok] = np.log(pmf[f[ok]]) - np.log(total[pair][ok]) - np.log(Lp[ok] - f[ok] + 1)
    out[pair] = values
    # Single reads: room m for the fragment from the read's 5' end to the transcript's end.
    single = np.flatnonzero(~pair)
    if single.size:
        room = np.clip(np.minimum(alignments["extent"][single], L[single]), 0, support)
        with np.errstate(divide="ignore"):  # no fragment fits: log 0 = -inf, dropped
            out[single] = np.log(_partial_start_sums(room, L[single], pmf)) - np.log(total[single])
    return out


def _partial_start_sums(room, L, pmf, block=4096):
    """``sum_{f <= room} pmf(f) / (L - f + 1)`` per alignment, in blocks of rows."""
    support = pmf.shape[0] - 1
    frag = np.arange(1, support + 1, dtype=float)
    out = np.empty(room.shape)
    # Alignments on the same transcript with the same room share the sum: compute each pair once.
    keys, inverse = np.unique(np.stack([L, room]), axis=1, return_inverse=True)
    sums = np.empty(keys.shape[1])
    for begin in range(0, keys.shape[1], block):
        Lb, mb = keys[0, begin:begin + block, None], keys[1, begin:begin + block, None]
        terms = np.where(frag[None, :] <= mb, pmf[None, 1:] / np.maximum(Lb - frag[None, :] + 1, 1), 0.0)
        sums[begin:begin + block] = terms.sum(axis=1)
    out[:] = sums[inverse.reshape(-1)]
    return out


def read_alignments(
    path,
    *,
    library_type="A",
    fragment_length=None,
    fragment_length_sd=None,
    score_scale=None,
    min_likelihood_ratio=1e-9,
):
    """Alignment likelihoods of the fragments of a BAM/SAM file, as weighted equivalence classes.

    The reads must be aligned to the transcriptome (one reference per
    transcript), for example by ``bowtie2 -k 200`` as RSEM and salmon's
    alignment mode recommend. See the module :mod:`skem.io._bam` for the
    model: an error term from the alignment score times the probability of
    the fragment's position and length on the transcript.

    Fragments: the records of one query name (adjacent records, or grouped
    by name when the header says ``SO:coordinate``). For paired-end reads,
    proper pairs (flag 0x2, the mates at each other's positions on one
    transcript) are the fragment's alignments; a fragment with no proper
    pair uses each aligned mate as a single read (orphans and discordant
    mates, as salmon keeps orphans). Secondary alignments are used,
    supplementary, QC-failed and unmapped records are not; a fragment left
    with no valid alignment is counted in ``n_unassigned``.

    Parameters
    ----------
    path : str or path-like
        BAM or SAM file.
    library_type : {"A", "U", "SF", "SR", "IU", "ISF", "ISR"}, default="A"
        salmon's codes: "A" detects the strandedness from the fragments
        aligned once (more than 80 % with read 1 on one strand: stranded);
        "U"/"IU" unstranded; "SF"/"ISF" read 1 on the transcript's strand,
        "SR"/"ISR" on the opposite strand (dUTP). Stranded types drop
        alignments of the other orientation. "I" is added or removed to
        match the data.
    fragment_length, fragment_length_sd : float, default=None
        Normal fragment-length distribution. None learns it from the
        fragments aligned once as a proper pair (paired-end), or uses
        salmon's default (250, 25) for single-end reads.
    score_scale : float, default=None
        Log-likelihood per unit of alignment score (salmon's ``--scoreExp``).
        A mismatch at sequencing error rate ``e`` costs
        ``log(3 (1 - e) / e)`` (5.7 for 1 %) of log-likelihood, so the scale
        is that over the aligner's mismatch penalty: about 1 suits bowtie2's
        default penalties (up to 6 per mismatch), 5.7 the ``--mp 1,1`` that
        RSEM runs bowtie2 with. None chooses it from the header's @PG line
        (:func:`auto_score_scale`: bowtie2/HISAT2 ``--mp``, BWA-MEM, STAR,
        salmon; 1 for other aligners). 0 ignores the scores.
    min_likelihood_ratio : float, default=1e-9
        Alignments whose error term is below this fraction of the
        fragment's best are dropped.

    Returns
    -------
    AlignmentClasses
        The classes (``X``, ``counts``), the transcripts' names, lengths and
        effective lengths, the fragment-length distribution, the library
        type, and the fragments read and left without a valid alignment.

    Raises
    ------
    ImportError
        If pysam is not installed.
    ValueError
        On a malformed file, a record on a reference missing from the
        header (naming the file and the record, or the line for SAM), a file
        with no aligned fragment, or bad options.

    Examples
    --------
    >>> from skem import TranscriptQuantifier
    >>> from skem.io import read_alignments
    >>> aln = read_alignments("reads.bam")  # doctest: +SKIP
    >>> model = TranscriptQuantifier(  # doctest: +SKIP
    ...     x_includes_length=True, effective_lengths=aln.effective_lengths,
    ...     lengths=aln.transcript_lengths, transcript_names=aln.transcript_names,
    ... ).fit(aln.X, sample_weight=aln.counts)
    """
    if library_type not in LIBRARY_TYPES:
        raise ValueError(f"library_type must be one of {', '.join(LIBRARY_TYPES)}; got {library_type!r}.")
    if fragment_length_sd is not None and fragment_length is None:
        raise ValueError("fragment_length_sd needs fragment_length (the mean).")
    if fragment_length is not None and not (np.isfinite(fragment_length) and fragment_length > 0):
        raise ValueError(f"fragment_length must be positive, got {fragment_length!r}.")
    if score_scale is not None and not (np.isfinite(score_scale) and score_scale >= 0):
        raise ValueError(f"score_scale must be >= 0 (or None: from the header), got {score_scale!r}.")
    if not 0 <= min_likelihood_ratio < 1:
        raise ValueError(f"min_likelihood_ratio must be in [0, 1), got {min_likelihood_ratio!r}.")
    path = os.fspath(path)
    header, names, lengths, n_fragments, blocks, paired, has_as = _scan(path)
    if np.any(lengths <= 0):
        k = int(np.argmax(lengths <= 0))
        raise ValueError(f"{path}, header: transcript {names[k]!r} has length {lengths[k]:g}.")
    if score_scale is None:
        score_scale, score_source = auto_score_scale(header, has_as)
    else:
        score_source = "given"
    library = _library_type(blocks, library_type, paired)
    if fragment_length is not None:
        log_pmf = fragment_log_pmf(fragment_length, fragment_length_sd or 1e-3)
    elif paired:
        log_pmf = _learned_pmf(blocks, MAX_FRAGMENT_LENGTH)
    else:
        log_pmf = fragment_log_pmf(*DEFAULT_FRAGMENT)

    # Each block's fragments become classes, freeing the block's alignments; the classes
    # of all blocks are then collapsed again (identical rows from different blocks merge).
    pieces, weights, n_assigned = [], [], 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()
        if library.endswith(("SF", "SR")):
            keep = block["forward"] == library.endswith("SF")
            block = {k: v[keep] for k, v in block.items()}
        rows = _likelihood_rows(block, lengths, log_pmf, score_scale, min_likelihood_ratio)
        del block
        if rows.shape[0]:
            n_assigned += rows.shape[0]
            classes, counts = equivalence_classes(rows)
            pieces.append(classes)
            weights.append(counts)
    if not n_assigned:
        raise ValueError(f"{path}: no fragment has a valid alignment ({n_fragments} fragments read).")
    X = sp.vstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
    classes, counts = equivalence_classes(X, np.concatenate(weights))
    return AlignmentClasses(
        X=classes,
        counts=counts,
        transcript_names=names,
        transcript_lengths=lengths,
        effective_lengths=effective_lengths_from_pmf(lengths, log_pmf),
        fragment_length_pmf=np.exp(log_pmf - np.logaddexp.reduce(log_pmf)),
        library_type=library,
        paired=paired,
        n_fragments=int(n_fragments),
        n_unassigned=int(n_fragments - n_assigned),
        score_scale=float(score_scale),
        score_scale_source=score_source,
    )


def _likelihood_rows(alignments, lengths, log_pmf, score_scale, min_likelihood_ratio):
    """Likelihood rows (fragments with a valid alignment x transcripts) of one block of alignments.

    The error term is relative to the fragment's best alignment; each row is
    divided by its largest entry; several positions on one transcript add up.
    """
    fragment = alignments["fragment"]
    score = alignments["score"].astype(np.float64)
    if fragment.size:
        # scores below the best first (exact for integer scores), then scaled: fragments whose
        # scores differ alike get bit-identical rows, so they share a class (scaling first
        # splits them by rounding: s * -5 - s * -3 need not equal s * -2)
        starts = np.flatnonzero(np.r_[True, fragment[1:] != fragment[:-1]])
        score -= np.repeat(np.maximum.reduceat(score, starts), np.diff(np.r_[starts, fragment.size]))
    log_weight = score_scale * score
    keep = log_weight >= np.log(min_likelihood_ratio) if min_likelihood_ratio > 0 else np.ones(fragment.size, bool)
    log_weight += _position_log_prob(alignments, lengths, log_pmf)
    keep &= np.isfinite(log_weight)
    fragment, transcript, log_weight = fragment[keep], alignments["transcript"][keep], log_weight[keep]
    rows, fragment = np.unique(fragment, return_inverse=True)
    row_max = np.full(rows.size, -np.inf)
    np.maximum.at(row_max, fragment, log_weight)
    return sp.csr_matrix((np.exp(log_weight - row_max[fragment]), (fragment, transcript)),
                         shape=(rows.size, len(lengths)))


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
