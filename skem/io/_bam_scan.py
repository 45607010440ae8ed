"""Scanning a BAM/SAM file: pysam records in, each fragment's alignments as compact arrays out.

The one module that touches pysam's records (the optional ``bam`` extra).
:func:`scan_alignments` reads the records once (twice for a file whose
records of one read are not adjacent), keeps a few numbers per record in
typed arrays and turns them into the alignments the likelihood model needs
(:func:`fragment_alignments`: a proper pair or a single read per alignment).
No Python object per record survives its record, and no likelihood is
computed here (see :mod:`skem.io._bam_likelihood`).

Fragments are the records of one read name, wherever they are in the file:

- Aligners write a read's records together. The first pass takes a change
  of name as a new fragment and turns the records read into alignments
  every ``block_records`` records (at a change of name), keeping a 64-bit
  hash of each fragment's name (8 bytes per fragment). If no hash occurs
  twice, no name does: each run of a name is a whole fragment.
- Otherwise (a coordinate-sorted file, read-1 records before read-2
  records, secondary alignments written after other reads, or the rare
  hash collision) a second pass numbers fragments by name: a run of a name
  whose hash occurred once is a fragment of its own, and only the names
  whose hash recurs go through a dict (about 150 bytes each), at most
  ``max_scattered_reads`` of them (past that, a ValueError names a read
  that recurs). That pass holds the records whole (22 bytes per record,
  packed; about 34 more while they are unpacked, sorted by fragment and
  turned into alignments). A read is
  never counted twice, whatever the order of the file and its header's
  ``SO`` field.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._text import check_utf8

__all__ = [
    "BLOCK_RECORDS",
    "MAX_SCATTERED_READS",
    "PAIR",
    "SINGLE",
    "RecordError",
    "ScannedFile",
    "alignment_file",
    "fragment_alignments",
    "import_pysam",
    "invalid_file",
    "is_unusable",
    "missing_reference",
    "checked_header",
    "read_header",
    "scan_alignments",
]

#: Kinds of fragment alignments: a proper pair, or one read standing alone.
PAIR, SINGLE = 0, 1
#: Flags of records that carry no usable alignment: unmapped (0x4), QC-failed (0x200) and
#: supplementary (0x800). Secondary alignments (0x100) are alternatives, kept.
UNUSABLE_FLAGS = 0xA04
#: Score per mismatch when the records have NM but no AS tag (bowtie2's largest mismatch penalty).
NM_PENALTY = 6.0
#: Per-record columns of the scan, packed in one byte string per block (22 bytes per record; the
#: fragment is kept per run of a name): uint16 flag, int32 ids and positions, float32 score (AS is
#: an integer, exact in float32 up to 2**24).
RECORD_DTYPE = np.dtype([("flag", "<u2"), ("transcript", "<i4"), ("start", "<i4"), ("end", "<i4"),
                         ("mate_start", "<i4"), ("score", "<f4")])
_PACK = struct.Struct("<Hiiiif").pack  # RECORD_DTYPE's layout
_NO_NAME = object()
#: Records of a name-grouped file turned into alignments at a time (bounds the per-record columns;
#: the alignments of all blocks are what stays).
BLOCK_RECORDS = 1 << 17
#: Reads whose records are not adjacent that the second pass numbers through a dict of names
#: (about 150 bytes each: 600 MB at this bound); a file with more must be grouped by name first.
MAX_SCATTERED_READS = 1 << 22


class ScannedFile(NamedTuple):
    """What :func:`scan_alignments` read from a file.

    Attributes
    ----------
    header : dict
        The SAM header (``pysam.AlignmentHeader.to_dict()``).
    transcript_names : ndarray of object of shape (n_transcripts,)
    transcript_lengths : ndarray of int64 of shape (n_transcripts,)
    n_fragments : int
        Distinct read names.
    blocks : list of dict
        The fragments' alignments (:func:`fragment_alignments`), each
        fragment's in one block.
    paired : bool
        Whether any usable record is paired (flag 0x1).
    has_as : bool
        Whether any usable record has an ``AS`` tag.
    """

    header: dict
    transcript_names: np.ndarray
    transcript_lengths: np.ndarray
    n_fragments: int
    blocks: list
    paired: bool
    has_as: bool


def import_pysam():
    """pysam, or an ImportError that names the ``bam`` extra."""
    try:
        import pysam
    except ImportError as exc:
        raise ImportError(
            "reading BAM/SAM files needs pysam; install the 'bam' extra: pip install 'skem[bam]'."
        ) from exc
    return pysam


class RecordError(Exception):
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
def alignment_file(path):
    """pysam's AlignmentFile on a SAM/BAM file, closed on exit; errors name the file and the place.

    Yields ``(bam, where)``: ``where(n)`` places record ``n`` (1-based), as
    its line for SAM and by number for BAM. The body raises
    :class:`RecordError` for a record it refuses (it becomes a ValueError)
    and places pysam's errors with :func:`invalid_file`. Bytes that are not
    UTF-8 in a SAM file are refused first, naming their line: htslib accepts
    some of them (in RNEXT, as an unknown reference) and places others
    nowhere.
    """
    pysam = import_pysam()
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
                raise invalid_file(path, "header", exc) from None
        try:
            header_lines = len(str(bam.header).splitlines()) if is_text else 0
            yield bam, (lambda n: f"line {header_lines + n}") if is_text else (lambda n: f"record {n}")
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        finally:
            with _unraisable_close_failures_silenced():
                try:
                    bam.close()
                except OSError:
                    pass  # the file's own error, if any, is being raised
    finally:
        pysam.set_verbosity(save)


def invalid_file(path, where, exc):
    """The ValueError for pysam's error ``exc`` at ``where`` (a line, a record or the header)."""
    return ValueError(f"{path}, {where}: not a valid SAM/BAM file ({exc}).")


def missing_reference(path, place, name):
    """The error for a mapped record whose reference is not in the header (or that has no CIGAR)."""
    return RecordError(
        f"{path}, {place}: read {name!r} is mapped to a reference that is not among the header's "
        "@SQ lines, or has no CIGAR."
    )


def is_unusable(record, flag):
    """Whether a record carries no alignment to use: unmapped, QC-failed or supplementary.

    The record filter of :func:`skem.io.read_alignments` and
    :func:`skem.io.read_bam`. htslib turns a record on a reference missing
    from the header into an unmapped one (with a warning we silence) but
    keeps its CIGAR: such a record is not skipped, so that the caller's
    check of its reference (:func:`missing_reference`) refuses it.
    """
    return flag & UNUSABLE_FLAGS and not (flag & 0x4 and record.cigartuples)


def _score_without_as(record):
    """The score of a record that has no ``AS`` tag: ``-6 NM``, or 0 without ``NM`` either."""
    try:
        return -NM_PENALTY * record.get_tag("NM")
    except KeyError:
        return 0.0


class _Records:
    """Per-record columns packed in a byte string, and the fragment of each run of records.

    One ``pack`` and one ``extend`` per record (measured less than half the
    cost of an ``append`` to each of six typed arrays); the fragment number
    is stored once per run of one read name, with the number of records
    before the run.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.run_fragment, self.run_start = array("i"), array("q")

    def start_run(self, fragment):
        """The records added from now on belong to ``fragment``."""
        self.run_fragment.append(fragment)
        self.run_start.append(len(self.buffer) // RECORD_DTYPE.itemsize)

    def arrays(self):
        """The columns as contiguous numpy arrays, ``fragment`` included."""
        packed = np.frombuffer(self.buffer, dtype=RECORD_DTYPE)  # (the buffer is full: no more records)
        out = {name: np.ascontiguousarray(packed[name]) for name in RECORD_DTYPE.names}
        n_records = packed.size
        del packed
        starts = np.frombuffer(self.run_start, dtype=np.int64)
        runs = np.frombuffer(self.run_fragment, dtype=np.int32)
        out["fragment"] = np.repeat(runs, np.diff(np.r_[starts, n_records]))
        return out


def _repeated(hashes):
    """The values that occur more than once in an int64 array, as a set."""
    ordered = np.sort(hashes)
    return set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())


class _Pass:
    """Running totals of one pass over the records (how many, kept, paired, without AS)."""

    def __init__(self):
        self.n_records = self.n_kept = self.n_without_as = 0
        self.paired = False

    def add(self, records):
        self.n_kept += records["flag"].size
        self.paired |= bool(np.any(records["flag"] & 0x1))


def _read_records(path, bam, where, totals, on_new_name):
    """Iterate over ``bam``, appending each usable record to the columns that ``on_new_name`` gives.

    ``on_new_name(name, n_records)`` is called at each change of read name
    and returns the :class:`_Records` to fill (it may flush the previous
    block, and starts the run's fragment), or None to stop reading.

    The loop is most of the cost of reading a BAM, so it does as little per
    record as it can: each field read once (``get_tag`` without ``has_tag``,
    the NM fallback only when AS is missing), the record filter
    (:func:`is_unusable`) inlined, the fields packed into one byte string
    (:class:`_Records`), the fragment stored per run of a name rather than
    per record, the file iterated directly rather than through ``fetch``.
    See benchmarks/bench_bam.py for its cost against plain pysam passes.
    """
    current = _NO_NAME  # unequal to any name (None included: a SAM QNAME of "*")
    n_records = totals.n_records
    pack = _PACK
    try:
        for record in bam:
            n_records += 1
            name = record.query_name
            if name != current:
                current = name
                records = on_new_name(name, n_records)
                if records is None:
                    break
                extend = records.buffer.extend
            flag = record.flag
            if flag & UNUSABLE_FLAGS and not (flag & 0x4 and record.cigartuples):  # is_unusable
                continue
            transcript = record.reference_id
            end = record.reference_end
            if transcript < 0 or end is None:
                raise missing_reference(path, where(n_records), name)
            try:
                score = record.get_tag("AS")
            except KeyError:
                totals.n_without_as += 1
                score = _score_without_as(record)
            try:
                extend(pack(flag, transcript, record.reference_start, end, record.next_reference_start,
                            score))
            except struct.error:
                raise RecordError(f"{path}, {where(n_records)}: read {name!r} has an AS or NM tag "
                                  f"that is not a number ({score!r}).") from None
    except UnicodeDecodeError as exc:  # decoding a field of the record read (BAM)
        raise invalid_file(path, where(n_records), exc) from None
    except (OSError, ValueError) as exc:  # htslib's reading of the next record
        raise invalid_file(path, where(n_records + 1), exc) from None
    totals.n_records = n_records


class _GroupedPass:
    """First pass: a run of one name is a fragment; blocks become alignments as they fill.

    After :meth:`run`: ``blocks``, ``totals``, ``hashes`` (one per run,
    int64) and ``stopped`` (the pass stopped turning records into alignments
    because a block held a name twice; the hashes then cover the whole file
    all the same).
    """

    def __init__(self, lengths, block_records):
        self.lengths, self.block_records = lengths, block_records
        self.blocks, self.totals, self.hashes = [], _Pass(), array("q")
        self.records = _Records()
        self.block_end, self.block_first, self.fragment, self.stopped = block_records, 0, -1, False

    def flush(self):
        records = self.records.arrays()
        self.totals.add(records)
        if records["flag"].size:
            self.blocks.append(fragment_alignments(records, self.lengths))

    def on_new_name(self, name, n_records):
        self.hashes.append(hash(name))
        self.fragment += 1
        if n_records > self.block_end:  # the block ends between fragments
            # (a copy: a numpy view would lock the array against appends)
            if _repeated(np.frombuffer(self.hashes[self.block_first:-1], np.int64)):
                self.stopped = True  # a name recurs: this pass cannot group by runs
                return None
            self.flush()
            self.records = _Records()
            self.block_end = n_records + self.block_records
            self.block_first = len(self.hashes) - 1
        self.records.start_run(self.fragment)
        return self.records

    def run(self, path, bam, where):
        _read_records(path, bam, where, self.totals, self.on_new_name)
        if self.stopped:  # the rest of the file, names only: the second pass needs every name's hash
            _hash_names(path, bam, where, self.totals.n_records, self.hashes.append)
        else:
            self.flush()
        self.hashes = np.frombuffer(self.hashes, np.int64)
        return self


def _hash_names(path, bam, where, n_records, append):
    """``append`` the hash of each run of one name in the rest of ``bam`` (records from ``n_records``)."""
    current = _NO_NAME
    try:
        for record in bam:
            n_records += 1
            name = record.query_name
            if name != current:
                current = name
                append(hash(name))
    except UnicodeDecodeError as exc:
        raise invalid_file(path, where(n_records), exc) from None
    except (OSError, ValueError) as exc:
        raise invalid_file(path, where(n_records + 1), exc) from None


def _keyed_pass(path, bam, where, lengths, block_records, repeated, max_scattered_reads):
    """Second pass: fragments numbered by name (a dict only for names whose hash recurs).

    Holds the records whole, sorts them by fragment and turns them into
    alignments in blocks of about ``block_records`` records. Returns the
    blocks, the totals and the number of fragments.
    """
    totals, records = _Pass(), _Records()
    fragment_of = {}
    n_fragments = 0

    def on_new_name(name, n_records):
        nonlocal n_fragments
        recurs = hash(name) in repeated
        fragment = fragment_of.get(name) if recurs else None
        if fragment is not None and len(repeated) > max_scattered_reads:
            raise RecordError(
                f"{path}, {where(n_records)}: read {name!r} recurs after other reads' "
                f"records, and the records of about {len(repeated)} reads are not "
                f"adjacent (skem groups at most {max_scattered_reads} such reads in "
                "memory): group the file by read name first (samtools collate, or "
                "samtools sort -n)."
            )
        if fragment is None:
            fragment = n_fragments
            n_fragments += 1
            if recurs:
                fragment_of[name] = fragment
        records.start_run(fragment)
        return records

    _read_records(path, bam, where, totals, on_new_name)
    del fragment_of
    columns = records.arrays()
    totals.add(columns)
    order = np.argsort(columns["fragment"], kind="stable")
    fragment = columns["fragment"][order]
    blocks = []
    begin = 0
    while begin < order.size:
        end = min(begin + block_records, order.size)
        if end < order.size:  # extend the block to the end of its last fragment
            end = int(np.searchsorted(fragment, fragment[end - 1], side="right"))
        rows = order[begin:end]
        blocks.append(fragment_alignments({k: v[rows] for k, v in columns.items()}, lengths))
        begin = end
    return blocks, totals, n_fragments


def read_header(path):
    """The header of a SAM/BAM file: ``(header dict, transcript names, transcript lengths)``.

    Raises
    ------
    ValueError
        On a malformed header, one without @SQ lines (transcripts), or a
        transcript of length 0, naming the file.
    """
    path = os.fspath(path)
    with alignment_file(path) as (bam, _):
        return checked_header(path, bam)


def checked_header(path, bam):
    """``(header dict, transcript names, transcript lengths)`` of an open file, checked.

    Refuses, before any record is read, a header without @SQ lines
    (transcripts) or with a transcript of length 0, naming the file.
    """
    header = bam.header.to_dict()
    names = np.asarray(bam.references, dtype=object)
    lengths = np.asarray(bam.lengths, dtype=np.int64)
    if len(names) == 0:
        raise ValueError(f"{path}, header: no @SQ reference sequences (transcripts).")
    if np.any(lengths <= 0):
        k = int(np.argmax(lengths <= 0))
        raise ValueError(f"{path}, header: transcript {names[k]!r} has length {lengths[k]}.")
    return header, names, lengths


def scan_alignments(path, *, block_records=BLOCK_RECORDS, max_scattered_reads=MAX_SCATTERED_READS):
    """Read a SAM/BAM file's records into each fragment's alignments, as compact arrays.

    See the module's docstring for how records are grouped into fragments
    (by name, whatever the order) and what is held in memory.

    Parameters
    ----------
    path : str or path-like
        BAM or SAM file.
    block_records : int, default=BLOCK_RECORDS
        Records turned into alignments at a time (at a change of fragment).
    max_scattered_reads : int, default=MAX_SCATTERED_READS
        Most reads whose records are not adjacent that are grouped by name
        in memory.

    Returns
    -------
    ScannedFile

    Raises
    ------
    ValueError
        On a malformed file, a record on a reference missing from the header
        (naming the file and the record, or the line for SAM), a header
        without references, or more than ``max_scattered_reads`` reads whose
        records are not adjacent (naming one).
    """
    path = os.fspath(path)
    with alignment_file(path) as (bam, where):
        header, names, lengths = checked_header(path, bam)
        first = _GroupedPass(lengths, block_records).run(path, bam, where)
    blocks, totals, n_fragments, stopped = first.blocks, first.totals, first.hashes.size, first.stopped
    repeated = _repeated(first.hashes)
    del first
    if stopped or repeated:
        blocks = None  # the first pass's alignments split some reads: read again by name
        with alignment_file(path) as (bam, where):
            blocks, totals, n_fragments = _keyed_pass(path, bam, where, lengths, block_records,
                                                      repeated, max_scattered_reads)
    return ScannedFile(header, names, lengths, int(n_fragments), blocks, totals.paired,
                       totals.n_without_as < totals.n_kept)


def fragment_alignments(records, lengths):
    """Fragment alignments from the records: proper pairs, else each aligned record as a single read.

    Parameters
    ----------
    records : dict of ndarray
        The scan's per-record columns (``fragment`` and those of
        ``RECORD_DTYPE``), the records of each fragment all present.
    lengths : ndarray of shape (n_transcripts,)
        The transcripts' lengths.

    Returns
    -------
    alignments : dict of ndarray
        ``fragment, transcript, kind, extent, forward, unique, score``
        sorted by fragment, in compact types (int32, int32, int8, int32,
        bool, bool, float32: 19 bytes per alignment). ``kind`` is
        :data:`PAIR` or :data:`SINGLE`; ``extent`` is what the position term
        needs: a pair's fragment length, or for a single read the room from
        its 5' end to the end of the transcript on its strand's side.
        ``forward``: read 1, or the single read, lies on the transcript's
        strand. ``unique``: the fragment's only alignment, made of all its
        usable records (a pair whose mates align nowhere else, a read with
        one record).
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
    span = int(fragment.max(initial=-1)) + 1 - low
    has_pair = np.zeros(span, dtype=bool)
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
        "kind": np.concatenate([np.full(row1.size, PAIR, np.int8), np.full(alone.size, SINGLE, np.int8)]),
        "extent": np.concatenate([np.maximum(records["end"][row1], records["end"][row2])
                                  - np.minimum(records["start"][row1], records["start"][row2]),
                                  room]).astype(np.int32),
        "forward": np.concatenate([(flag[row1] & 0x10) == 0, forward_alone]),
        "score": np.concatenate([score[row1] + score[row2], score[alone]]),
    }
    # unique: one alignment per fragment that uses every usable record of the fragment
    n_records = np.bincount(fragment - low, minlength=span)
    n_alignments = np.bincount(out["fragment"] - low, minlength=span)
    uses = np.where(out["kind"] == PAIR, 2, 1)
    at = out["fragment"] - low
    out["unique"] = (n_alignments[at] == 1) & (n_records[at] == uses)
    if np.all(out["fragment"][1:] >= out["fragment"][:-1]):
        return out  # no pair: the single reads are in record order, sorted by fragment already
    order = np.argsort(out["fragment"], kind="stable")
    return {k: v[order] for k, v in out.items()}
