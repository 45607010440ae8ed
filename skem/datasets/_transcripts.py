"""Simulated RNA-seq reads from known transcript abundances.

Transcripts are chains of exons. Each exon has a *sequence id*; two exons
with the same id have identical sequence (that is how a paralog pair is
made). A read is a fragment of fixed length at a uniformly drawn start
position; it is compatible with every transcript that contains the same run
of exon sequences consecutively (a read inside one exon is compatible with
every transcript containing that exon). So compatibility is exact, and the
model of :class:`skem.TranscriptQuantifier` with ``fragment_length`` equal to
the simulator's is the true generative model.

Reads are not drawn one by one: for a fixed fragment length the run of exons
a read covers is constant over stretches of start positions, so each
transcript has a few *segments* (stretch of starts, compatible set), and the
reads per segment are one multinomial draw. That makes 10**6 reads cheap.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state

from ..transcripts import equivalence_classes


def make_transcript_reads(
    n_reads=20000,
    *,
    n_genes=40,
    max_isoforms=4,
    exons_per_gene=(3, 8),
    exon_length=(80, 400),
    fragment_length=100,
    absent_fraction=0.1,
    collapse=True,
    random_state=None,
):
    """Draw reads from genes with alternatively spliced isoforms and a paralog pair.

    Each gene has between ``exons_per_gene[0]`` and ``exons_per_gene[1]``
    exons; its first isoform uses all of them, the others skip random
    internal exons (isoforms of a gene share exons). Gene 1 is a paralog of
    gene 0: the same exon sequences except its last exon, so reads that
    miss that exon are ambiguous between the two genes. Transcript
    abundances are log-normal, with a fraction ``absent_fraction`` of
    transcripts not expressed. Reads are fragments of ``fragment_length``
    with uniform start positions.

    Parameters
    ----------
    n_reads : int, default=20000
        Number of reads.
    n_genes : int, default=40
        Number of genes (>= 2; genes 0 and 1 are the paralog pair).
    max_isoforms : int, default=4
        Maximum number of isoforms per gene (at least 1 each).
    exons_per_gene : tuple of int, default=(3, 8)
        Range (inclusive) of the number of exons per gene.
    exon_length : tuple of int, default=(80, 400)
        Range (inclusive) of exon lengths.
    fragment_length : int, default=100
        Length of every fragment. Isoforms shorter than this are not made.
    absent_fraction : float, default=0.1
        Fraction of transcripts with zero abundance.
    collapse : bool, default=True
        Return equivalence classes with their read counts (True) or one row
        per read in random order, with unit weights (False).
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : csr_matrix of shape (n_rows, n_transcripts)
        0/1 compatibility of each equivalence class (or read) with each transcript.
    sample_weight : ndarray of shape (n_rows,)
        Reads per class (ones when ``collapse=False``).
    truth : Bunch
        ``transcript_names``, ``gene`` (gene index of each transcript),
        ``lengths``, ``effective_lengths`` (``length - fragment_length + 1``),
        ``exons`` (tuple of exon sequence ids per transcript), ``tau``
        (molecule fractions), ``nu`` (read fractions), ``tpm``, ``counts``
        (reads drawn from each transcript) and, when ``collapse=False``,
        ``origin`` (the transcript of each read).

    Examples
    --------
    >>> from skem.datasets import make_transcript_reads
    >>> X, counts, truth = make_transcript_reads(1000, n_genes=5, random_state=0)
    >>> int(counts.sum()), X.shape[1] == len(truth.lengths)
    (1000, True)
    """
    rng = check_random_state(random_state)
    if n_genes < 2:
        raise ValueError("n_genes must be >= 2 (genes 0 and 1 are a paralog pair).")
    if not 0 <= absent_fraction < 1:
        raise ValueError("absent_fraction must be in [0, 1).")
    exons, genes, exon_lengths = _make_transcriptome(
        rng, n_genes, max_isoforms, exons_per_gene, exon_length, fragment_length
    )
    lengths = np.array([sum(exon_lengths[e] for e in t) for t in exons], dtype=float)
    eff_lengths = lengths - fragment_length + 1.0
    M = len(exons)

    tau = rng.lognormal(mean=0.0, sigma=1.5, size=M)
    absent = rng.permutation(M)[: int(round(absent_fraction * M))]
    tau[absent] = 0.0
    tau /= tau.sum()
    nu = tau * eff_lengths / np.sum(tau * eff_lengths)
    counts = rng.multinomial(n_reads, nu)

    rows, reads_per_row, origin_per_row = _segment_rows(
        exons, exon_lengths, fragment_length, counts, rng
    )
    X = sp.csr_matrix(
        (np.ones(sum(len(r) for r in rows)),
         np.concatenate(rows).astype(np.intp),
         np.concatenate([[0], np.cumsum([len(r) for r in rows])])),
        shape=(len(rows), M),
    )
    truth = Bunch(
        transcript_names=np.array([f"g{g}.t{i}" for i, g in _isoform_numbers(genes)], dtype=object),
        gene=np.asarray(genes),
        lengths=lengths,
        effective_lengths=eff_lengths,
        exons=tuple(tuple(t) for t in exons),
        tau=tau,
        nu=nu,
        tpm=1e6 * tau,
        counts=counts.astype(float),
    )
    if collapse:
        X, weights = equivalence_classes(X, reads_per_row)
        return X, weights, truth
    read_rows = np.repeat(np.arange(len(rows)), reads_per_row)
    order = rng.permutation(read_rows.size)
    truth.origin = np.repeat(origin_per_row, reads_per_row)[order]
    return X[read_rows[order]], np.ones(read_rows.size), truth


def _make_transcriptome(rng, n_genes, max_isoforms, exons_per_gene, exon_length, fragment_length):
    """Exon sequence ids of each transcript, its gene, and the length of each sequence id."""
    exon_lengths = []
    gene_exons = []
    for g in range(n_genes):
        n_exons = rng.randint(exons_per_gene[0], exons_per_gene[1] + 1)
        if g == 1:  # paralog of gene 0: same sequences but a distinct last exon
            ids = gene_exons[0][:-1] + [len(exon_lengths)]
            exon_lengths.append(int(rng.randint(exon_length[0], exon_length[1] + 1)))
        else:
            ids = list(range(len(exon_lengths), len(exon_lengths) + n_exons))
            drawn = rng.randint(exon_length[0], exon_length[1] + 1, n_exons)
            exon_lengths.extend(int(x) for x in drawn)
        gene_exons.append(ids)

    exons, genes = [], []
    for g, ids in enumerate(gene_exons):
        isoforms = [tuple(ids)]
        for _ in range(4 * max_isoforms):
            if len(isoforms) >= rng.randint(1, max_isoforms + 1) or len(ids) < 3:
                break
            inner = [e for e in ids[1:-1] if rng.uniform() < 0.6]
            candidate = (ids[0], *inner, ids[-1])
            long_enough = sum(exon_lengths[e] for e in candidate) >= fragment_length
            if candidate not in isoforms and long_enough:
                isoforms.append(candidate)
        if sum(exon_lengths[e] for e in ids) < fragment_length:
            continue  # a gene too short for any fragment has no transcripts
        exons.extend(isoforms)
        genes.extend([g] * len(isoforms))
    return exons, genes, exon_lengths


def _isoform_numbers(genes):
    seen = {}
    for g in genes:
        seen[g] = seen.get(g, -1) + 1
        yield seen[g], g


def _segment_rows(exons, exon_lengths, fragment_length, counts, rng):
    """Compatible transcripts, read count and origin of every segment of start positions."""
    # Every consecutive run of exon sequences -> the transcripts containing it.
    containing = {}
    for t, ids in enumerate(exons):
        for i in range(len(ids)):
            for j in range(i + 1, len(ids) + 1):
                containing.setdefault(tuple(ids[i:j]), set()).add(t)
    rows, reads, origin = [], [], []
    for t, ids in enumerate(exons):
        if counts[t] == 0:
            continue
        ends = np.cumsum([exon_lengths[e] for e in ids])
        starts = ends - [exon_lengths[e] for e in ids]
        n_starts = ends[-1] - fragment_length + 1
        # the start exon changes at exon starts, the end exon where start + f - 1 reaches one
        breaks = np.concatenate([starts, starts - fragment_length + 1, [0]])
        breaks = np.unique(np.clip(breaks, 0, n_starts))
        breaks = np.append(breaks[breaks < n_starts], n_starts)
        first = np.searchsorted(ends, breaks[:-1], side="right")
        last = np.searchsorted(ends, breaks[:-1] + fragment_length - 1, side="right")
        sizes = np.diff(breaks)
        per_segment = rng.multinomial(counts[t], sizes / sizes.sum())
        for i, j, k in zip(first, last, per_segment):
            if k:
                rows.append(np.array(sorted(containing[tuple(ids[i : j + 1])])))
                reads.append(k)
                origin.append(t)
    return rows, np.array(reads), np.array(origin)
