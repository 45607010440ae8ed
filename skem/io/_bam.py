"""Readers of BAM/SAM files aligned to the transcriptome: likelihood classes and 0/1 compatibility.

:func:`read_alignments` gives weighted equivalence classes of alignment
likelihoods (salmon's alignment mode and RSEM's model: see
:mod:`skem.io._bam_likelihood`) from the compact alignments that
:mod:`skem.io._bam_scan` reads with pysam; :func:`read_bam` gives a reads x
transcripts 0/1 matrix. Both group a file's records by read name, whatever
their order.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ..transcripts import (
    MAX_FRAGMENT_LENGTH,
    effective_lengths_from_pmf,
    equivalence_classes,
    fragment_log_pmf,
)
from ._bam_likelihood import auto_score_scale, detect_library_type, learned_log_pmf, likelihood_rows
from ._bam_scan import (
    alignment_file,
    checked_header,
    invalid_file,
    is_unusable,
    missing_reference,
    read_header,
    scan_alignments,
)
from ._quant import AlignedReads
from ._library_types import LIBRARY_TYPES

__all__ = ["AlignmentClasses", "LIBRARY_TYPES", "auto_score_scale", "read_alignments", "read_bam"]

#: salmon's prior fragment-length distribution, used for single-end reads without one.
DEFAULT_FRAGMENT = (250.0, 25.0)


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
        ``P(f)`` for ``f = 0..F`` (learned from uniquely aligned proper
        pairs, or the normal density given or salmon's default for
        single-end reads).
    library_type : str
        The library type used (detected when "A" was asked).
    paired : bool
        Whether the fragments were read as pairs.
    n_fragments : int
        Fragments (reads or pairs) in the file: distinct read names.
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


def _check_fragments_fit(path, lengths, log_pmf, fragment_length, fragment_length_sd):
    """Refuse a fragment-length distribution under which no fragment fits any transcript.

    Lengths up to the longest transcript must keep a probability that is
    not 0 in double precision; a distribution far out in its tail there is
    handled in log space (:mod:`skem.io._bam_likelihood`).
    """
    support = log_pmf.shape[0] - 1
    log_mass = np.logaddexp.accumulate(log_pmf)
    longest = int(lengths.max())
    with np.errstate(invalid="ignore"):
        fits = np.exp(log_mass[min(longest, support)] - log_mass[-1]) > 0
    if not fits:
        sd = "" if fragment_length_sd is None else f", sd {fragment_length_sd:g}"
        raise ValueError(
            f"{path}: no fragment of the fragment-length distribution (mean {fragment_length:g}{sd}) "
            f"fits any transcript: the longest is {longest} bases; give a smaller fragment_length."
        )


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
    alignment mode recommend. See the module :mod:`skem.io._bam_likelihood`
    for the model: an error term from the alignment score times the
    probability of the fragment's position and length on the transcript.

    Fragments: the records of one read name, wherever they are in the file
    (name-grouped as aligners write it, coordinate-sorted, or any order;
    see :mod:`skem.io._bam_scan` for the memory each takes). For paired-end reads,
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
        fragments aligned uniquely as a proper pair (paired-end), or uses
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
        with no aligned fragment, a fragment length under which no fragment
        fits any transcript, or bad options.

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
    if fragment_length is not None:
        log_pmf = fragment_log_pmf(fragment_length, fragment_length_sd or 1e-3)
        _check_fragments_fit(path, read_header(path)[2], log_pmf, fragment_length, fragment_length_sd)
    header, names, lengths, n_fragments, blocks, paired, has_as = scan_alignments(path)
    if score_scale is None:
        score_scale, score_source = auto_score_scale(header, has_as)
    else:
        score_source = "given"
    library = detect_library_type(blocks, library_type, paired)
    if fragment_length is None:
        if paired:
            log_pmf = learned_log_pmf(blocks, MAX_FRAGMENT_LENGTH)
        else:
            log_pmf = fragment_log_pmf(*DEFAULT_FRAGMENT)
            _check_fragments_fit(path, lengths, log_pmf, *DEFAULT_FRAGMENT)

    # Each block's fragments become classes, freeing the block's alignments; the classes
    # of all blocks are then collapsed again (identical rows from different blocks merge).
    pieces, weights, n_assigned = [], [], 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()
        if library.endswith(("SF", "SR")):
            keep = block["forward"] == library.endswith("SF")
            block = {k: v[keep] for k, v in block.items()}
        rows = likelihood_rows(block, lengths, log_pmf, score_scale, min_likelihood_ratio)
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
        transcript_lengths=lengths.astype(float),
        effective_lengths=effective_lengths_from_pmf(lengths.astype(float), log_pmf),
        fragment_length_pmf=np.exp(log_pmf - np.logaddexp.reduce(log_pmf)),
        library_type=library,
        paired=paired,
        n_fragments=int(n_fragments),
        n_unassigned=int(n_fragments - n_assigned),
        score_scale=float(score_scale),
        score_scale_source=score_source,
    )



def read_bam(path):
    """Build a reads x transcripts matrix from a BAM or SAM file of reads aligned to the transcriptome.

    Needs pysam (the ``bam`` extra: ``pip install 'skem[bam]'``). All
    alignments of a read are used (primary and secondary); supplementary
    pieces, QC-failed (0x200) and unmapped records are skipped, as
    :func:`read_alignments` skips them. The mates of a pair form one row,
    compatible with the transcripts both mates align to (either mate's, if
    only one aligns); a pair whose mates align to no common transcript, and
    an unmapped read, give an all-zero row, which ``TranscriptQuantifier``
    reports in ``n_unassigned_``.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    AlignedReads
        ``X`` (0/1), ``read_names`` (in file order), ``transcript_names`` and
        ``transcript_lengths`` from the header's ``@SQ`` lines.

    Raises
    ------
    ImportError
        If pysam is not installed.
    ValueError
        On a malformed file, naming the file and the record (the line for SAM).
    """
    path = os.fspath(path)
    reads, order = {}, []
    n_records = 0
    with alignment_file(path) as (bam, where):
        _, names, lengths = checked_header(path, bam)
        try:
            for alignment in bam.fetch(until_eof=True):
                n_records += 1
                name = alignment.query_name
                mates = reads.get(name)
                if mates is None:
                    mates = reads[name] = (set(), set(), set())
                    order.append(name)
                if is_unusable(alignment, alignment.flag):  # the records read_alignments skips
                    continue
                if alignment.reference_id < 0 or alignment.reference_end is None:
                    raise missing_reference(path, where(n_records), name)
                mate = 1 if alignment.is_read1 else 2 if alignment.is_read2 else 0
                mates[mate].add(alignment.reference_id)
        except UnicodeDecodeError as exc:  # decoding a field of the record read (BAM)
            raise invalid_file(path, where(n_records), exc) from None
        except (OSError, ValueError) as exc:  # htslib's reading of the next record
            raise invalid_file(path, where(n_records + 1), exc) from None
    indptr, indices = [0], []
    for name in order:
        single, first, second = reads[name]
        if first and second:
            compatible = single | (first & second)
        else:
            compatible = single | first | second
        indices.extend(sorted(compatible))
        indptr.append(len(indices))
    X = sp.csr_matrix(
        (np.ones(len(indices)), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
        shape=(len(order), len(names)),
    )
    return AlignedReads(X, np.asarray(order, dtype=object), names, lengths.astype(float))
