"""read_alignments: alignment likelihoods from small BAM/SAM files made here with pysam.

Expected likelihoods are computed by hand from the model (error term exp(AS - best),
fragment length and start probabilities from a normal density written out with scipy).
"""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest
from scipy.stats import norm

pysam = pytest.importorskip("pysam")

from skem import TranscriptQuantifier  # noqa: E402
from skem.io import read_alignments, read_bam  # noqa: E402
from skem.transcripts import effective_lengths  # noqa: E402

REFS = {"A": 1000, "B": 600}
READ = 50


def header(refs=REFS, order="unsorted"):
    return {"HD": {"VN": "1.6", "SO": order}, "SQ": [{"SN": n, "LN": L} for n, L in refs.items()]}


def segment(bam_header, name, ref, start, *, flag=0, score=None, nm=None, mate=None, length=READ):
    """One record; ``mate=(ref, start)`` makes it a paired record (flag bits are the caller's)."""
    a = pysam.AlignedSegment(bam_header)
    a.query_name = name
    a.query_sequence = "A" * length
    a.flag = flag
    if flag & 0x4:
        a.reference_id = -1
        return a
    a.reference_name = ref
    a.reference_start = start
    a.cigarstring = f"{length}M"
    a.mapping_quality = 255
    if mate is not None:
        a.next_reference_name, a.next_reference_start = mate
    if score is not None:
        a.set_tag("AS", score)
    if nm is not None:
        a.set_tag("NM", nm)
    return a


def pair(bam_header, name, ref, left, right, *, score=(0, 0), read1_forward=True, secondary=False):
    """A proper pair: one mate at ``left``, the other (reverse) at ``right``."""
    base = 0x1 | 0x2 | (0x100 if secondary else 0)
    first_at, second_at = (left, right) if read1_forward else (right, left)
    first = segment(bam_header, name, ref, first_at, score=score[0], mate=(ref, second_at),
                    flag=base | 0x40 | (0 if read1_forward else 0x10) | (0x20 if read1_forward else 0))
    second = segment(bam_header, name, ref, second_at, score=score[1], mate=(ref, first_at),
                     flag=base | 0x80 | (0x10 if read1_forward else 0) | (0 if read1_forward else 0x20))
    return [first, second]


def write_bam(path, records, refs=REFS, order="unsorted"):
    with pysam.AlignmentFile(str(path), "wb", header=header(refs, order)) as out:
        bam_header = out.header
        for make in records:
            for record in make(bam_header):
                out.write(record)
    return path


def normal_pmf(mean, sd, support=1000):
    """P(f), f = 0..support: the normal density at 1..support, normalized (P(0) = 0)."""
    p = np.r_[0.0, norm.pdf(np.arange(1, support + 1), mean, sd)]
    return p / p.sum()


def row_of(aln, transcripts):
    """The single class row, as a dict transcript -> weight."""
    names = list(aln.transcript_names)
    assert aln.X.shape[0] == 1
    return {t: aln.X[0, names.index(t)] for t in transcripts}


# ------------------------------------------------------------------ single-end


def test_single_end_scores_and_start_probabilities(tmp_path):
    # forward read at 10 on A (AS 0) and at 20 on B (AS -6): both leave room for any fragment
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 10, score=0),
                   segment(h, "r1", "B", 20, score=-6, flag=0x100)],
    ])
    aln = read_alignments(path, fragment_length=100, library_type="U")
    row = row_of(aln, "AB")
    expected_b = np.exp(-6) * (1 / 501) / (1 / 901)  # p(start) = 1 / (L - f + 1)
    assert row["A"] == pytest.approx(1.0) and row["B"] == pytest.approx(expected_b, rel=1e-9)
    np.testing.assert_allclose(aln.effective_lengths, [901, 501])
    assert aln.n_fragments == 1 and aln.n_unassigned == 0 and not aln.paired


def test_single_end_near_the_end_sums_the_fragments_that_fit(tmp_path):
    mean, sd = 200.0, 30.0
    # forward at 900 on A: room for fragments up to 100; reverse ending at 150 on B: up to 150
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 900, score=0), segment(h, "r1", "B", 100, flag=0x110, score=0)],
    ])
    aln = read_alignments(path, fragment_length=mean, fragment_length_sd=sd, library_type="U")
    p = normal_pmf(mean, sd)
    f = np.arange(1001)

    def start_probability(L, room):
        fits = (f >= 1) & (f <= room)
        return np.sum(p[fits] / (L - f[fits] + 1)) / p[: L + 1].sum()

    a, b = start_probability(1000, 100), start_probability(600, 150)
    row = row_of(aln, "AB")
    assert row["B"] / row["A"] == pytest.approx(b / a, rel=1e-9)
    np.testing.assert_allclose(aln.effective_lengths, effective_lengths([1000, 600], mean, sd))
    np.testing.assert_allclose(aln.fragment_length_pmf, p[: aln.fragment_length_pmf.size] / p.sum(),
                               rtol=1e-9, atol=1e-300)


def test_unmapped_supplementary_and_impossible_reads_are_counted(tmp_path):
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "ok", "A", 10, score=0)],
        lambda h: [segment(h, "unmapped", None, 0, flag=0x4)],
        lambda h: [segment(h, "supp", "A", 10, flag=0x800, score=0)],
        lambda h: [segment(h, "tooshort", "B", 590 - READ + 10, score=0, length=READ)],  # room 60 < f
    ])
    aln = read_alignments(path, fragment_length=100, library_type="U")
    assert aln.n_fragments == 4 and aln.n_unassigned == 3
    assert aln.counts.sum() == 1


def test_alignments_far_below_the_best_are_dropped(tmp_path):
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 10, score=0), segment(h, "r1", "B", 10, score=-30, flag=0x100)],
    ])
    kept = read_alignments(path, fragment_length=100, min_likelihood_ratio=0)
    assert kept.X.nnz == 2
    dropped = read_alignments(path, fragment_length=100)  # exp(-30) < 1e-9
    assert dropped.X.nnz == 1
    flat = read_alignments(path, fragment_length=100, score_scale=0)
    row = row_of(flat, "AB")
    assert row["B"] / row["A"] == pytest.approx(901 / 501)


def test_a_record_without_as_or_nm_scores_as_a_perfect_alignment(tmp_path):
    # read_alignments' rule: AS, else -6 NM, else 0 (no mismatch known)
    rows = []
    for tags in ({}, {"nm": 0}):
        path = write_bam(tmp_path / f"r{len(rows)}.bam", [
            lambda h, tags=tags: [segment(h, "r1", "A", 10, nm=0),
                                  segment(h, "r1", "B", 10, flag=0x100, **tags)],
        ])
        rows.append(row_of(read_alignments(path, fragment_length=100, library_type="U",
                                           score_scale=1), "AB"))
    assert rows[0] == pytest.approx(rows[1], rel=1e-12)
    assert rows[0]["B"] / rows[0]["A"] == pytest.approx(901 / 501, rel=1e-9)


def test_nm_is_used_without_as(tmp_path):
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 10, nm=0), segment(h, "r1", "A", 300, nm=1, flag=0x100),
                   segment(h, "r1", "B", 10, nm=2, flag=0x100)],
    ])
    row = row_of(read_alignments(path, fragment_length=100, library_type="U", score_scale=1), "AB")
    # two positions on A add up; each mismatch scores -6, so costs exp(-6) at scale 1
    assert row["B"] / row["A"] == pytest.approx(np.exp(-12) * 901 / 501 / (1 + np.exp(-6)), rel=1e-9)
    # chosen automatically: a mismatch costs its likelihood ratio at 1 % error, 0.99 / (0.01 / 3)
    aln = read_alignments(path, fragment_length=100, library_type="U")
    row = row_of(aln, "AB")
    per_mismatch = 0.01 / 3 / 0.99
    assert aln.score_scale == pytest.approx(np.log(297) / 6)
    assert row["B"] / row["A"] == pytest.approx(per_mismatch**2 * 901 / 501 / (1 + per_mismatch), rel=1e-9)


# ------------------------------------------------------------------ paired-end


@pytest.mark.parametrize("a_mate_starts, mean, sd", [
    # On A: fragment [100, 300) of length 200.
    ((100, 250), 200.0, 20.0),
    # Both mates at 100 on A (fragment [100, 150), as long as a read): read 2's keys then
    # equal its own mate's, and only read 1 may start a pair (flag 0x40), or read 2 joins itself.
    ((100, 100), 100.0, 30.0),
])
def test_proper_pair_length_probability(tmp_path, a_mate_starts, mean, sd):
    # On B (secondary): [50, 280) of length 230.
    left, right = a_mate_starts
    path = write_bam(tmp_path / "r.bam", [
        lambda h: pair(h, "f1", "A", left, right, score=(0, -2))
        + pair(h, "f1", "B", 50, 230, score=(-3, -1), secondary=True),
    ])
    aln = read_alignments(path, fragment_length=mean, fragment_length_sd=sd)
    assert aln.paired and aln.n_fragments == 1
    p = normal_pmf(mean, sd)
    length = right + READ - left
    a = np.exp(-2) * p[length] / p[:1001].sum() / (1000 - length + 1)
    b = np.exp(-4) * p[230] / p[:601].sum() / (600 - 230 + 1)
    row = row_of(aln, "AB")
    assert row["B"] / row["A"] == pytest.approx(b / a, rel=1e-9)


def test_orphan_mates_count_as_single_reads(tmp_path):
    # read 1 aligns alone (its mate unmapped): a single read of read 1's orientation
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "f1", "A", 10, flag=0x1 | 0x8 | 0x40, score=0),
                   segment(h, "f1", None, 0, flag=0x1 | 0x4 | 0x80)],
    ] + [lambda h, i=i: pair(h, f"p{i}", "A", 100 + i, 250 + i) for i in range(20)])
    aln = read_alignments(path, fragment_length=200, fragment_length_sd=20, library_type="IU")
    assert aln.n_fragments == 21 and aln.n_unassigned == 0 and aln.counts.sum() == 21


def test_an_orphan_where_no_learned_fragment_length_fits_is_unassigned(tmp_path):
    # Lengths learned from 20 pairs of 200 +- 2: the normal's 1 % underflows to 0 far below
    # 200, so no fragment fits a 60-bp transcript: an orphan mate there has likelihood 0.
    refs = {"A": 1000, "C": 60}
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "o", "C", 5, flag=0x1 | 0x8 | 0x40, score=0),
                   segment(h, "o", None, 0, flag=0x1 | 0x4 | 0x80)],
    ] + [lambda h, i=i: pair(h, f"p{i}", "A", 100 + i, 100 + i + 200 + (i % 5) - 2 - READ)
         for i in range(20)], refs=refs)
    aln = read_alignments(path, library_type="IU")
    assert aln.fragment_length_pmf[1:61].sum() == 0.0
    assert aln.n_fragments == 21 and aln.n_unassigned == 1 and aln.counts.sum() == 20
    assert np.isfinite(aln.X.data).all()


def test_orphan_read_2_has_room_on_its_own_strands_side(tmp_path):
    # read 2 alone, reverse on both transcripts: the fragment reaches left of its 5' end
    # (its end), so [10, 60) on A leaves room for fragments up to 60, [500, 550) on B up to 550
    mean, sd = 100.0, 20.0
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "f1", None, 0, flag=0x1 | 0x4 | 0x40),
                   segment(h, "f1", "A", 10, flag=0x1 | 0x8 | 0x10 | 0x80, score=0),
                   segment(h, "f1", "B", 500, flag=0x1 | 0x8 | 0x10 | 0x80 | 0x100, score=0)],
    ])
    aln = read_alignments(path, fragment_length=mean, fragment_length_sd=sd, library_type="IU",
                          min_likelihood_ratio=0)
    p = normal_pmf(mean, sd)
    f = np.arange(1001)

    def start_probability(L, room):
        fits = (f >= 1) & (f <= room)
        return np.sum(p[fits] / (L - f[fits] + 1)) / p[: L + 1].sum()

    row = row_of(aln, "AB")
    expected = start_probability(1000, 60) / start_probability(600, 550)
    assert row["A"] / row["B"] == pytest.approx(expected, rel=1e-9)
    assert expected < 0.1  # the wrong side (room 990 on A) would favour A


def test_learned_fragment_lengths_and_strand_detection(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.normal(180, 15, 400).round().astype(int)
    records = [lambda h, i=i, f=f: pair(h, f"p{i}", "A", 100, 100 + f - READ, read1_forward=False)
               for i, f in enumerate(lengths)]
    path = write_bam(tmp_path / "r.bam", records)
    aln = read_alignments(path)
    assert aln.library_type == "ISR"  # read 1 always on the reverse strand: dUTP
    pmf = aln.fragment_length_pmf
    mean = np.sum(np.arange(pmf.size) * pmf)
    assert mean == pytest.approx(lengths.mean(), abs=1.0)
    with pytest.raises(ValueError, match="too few"):
        read_alignments(write_bam(tmp_path / "few.bam", records[:3]))


def test_stranded_library_drops_the_other_orientation(tmp_path):
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 10, score=0), segment(h, "r1", "B", 300, flag=0x110, score=0)],
    ])
    assert read_alignments(path, fragment_length=100, library_type="SF").X.nnz == 1
    assert read_alignments(path, fragment_length=100, library_type="SR").X.nnz == 1
    assert read_alignments(path, fragment_length=100, library_type="U").X.nnz == 2


def test_coordinate_sorted_file_groups_by_name(tmp_path):
    records = [lambda h: pair(h, "f1", "A", 100, 250) + pair(h, "f1", "B", 10, 150, secondary=True),
               lambda h: pair(h, "f2", "A", 120, 260)]
    unsorted = read_alignments(write_bam(tmp_path / "u.bam", records), fragment_length=150,
                               fragment_length_sd=30)
    with pysam.AlignmentFile(str(tmp_path / "u.bam")) as source:
        all_records = sorted(source.fetch(until_eof=True),
                             key=lambda a: (a.reference_id, a.reference_start))
    with pysam.AlignmentFile(str(tmp_path / "c.bam"), "wb", header=header(order="coordinate")) as out:
        for record in all_records:
            out.write(record)
    by_position = read_alignments(tmp_path / "c.bam", fragment_length=150, fragment_length_sd=30)
    assert by_position.n_fragments == 2
    np.testing.assert_allclose(by_position.X.toarray(), unsorted.X.toarray())
    np.testing.assert_array_equal(by_position.counts, unsorted.counts)


# ------------------------------------------------------------------ fits


def simulate_fragments(rng, n, weights, lengths, mean, sd):
    """(transcript, start, fragment length) of n fragments drawn from the model itself."""
    transcript = rng.choice(len(weights), size=n, p=weights)
    out = []
    for t in transcript:
        while True:
            f = int(round(rng.normal(mean, sd)))
            if READ <= f <= lengths[t]:
                break
        out.append((t, int(rng.integers(0, lengths[t] - f + 1)), f))
    return out


def test_decoy_with_mismatches_gets_nothing_where_compatibility_splits(tmp_path):
    # every read of A also aligns to its paralog B with 2 mismatches; B has no reads
    refs = {"A": 800, "B": 800}
    rng = np.random.default_rng(1)
    starts = rng.integers(0, 800 - 100, 300)
    records = [lambda h, i=i, s=s: [segment(h, f"r{i}", "A", int(s), score=0),
                                    segment(h, f"r{i}", "B", int(s), score=-12, flag=0x100)]
               for i, s in enumerate(starts)]
    path = write_bam(tmp_path / "r.bam", records, refs=refs)
    aln = read_alignments(path, fragment_length=100)
    fit = TranscriptQuantifier(x_includes_length=True, effective_lengths=aln.effective_lengths,
                               lengths=aln.transcript_lengths).fit(aln.X, sample_weight=aln.counts)
    assert fit.est_counts_[0] == pytest.approx(300, rel=1e-6) and fit.est_counts_[1] < 1e-6
    compatible = read_bam(path)  # 0/1 compatibility cannot tell them apart
    zero_one = TranscriptQuantifier(lengths=compatible.transcript_lengths).fit(compatible.X)
    assert zero_one.est_counts_[1] > 100


def test_paired_and_single_end_reads_of_the_same_fragments_agree(tmp_path):
    refs = {"A": 1500, "B": 900, "C": 400}
    lengths = np.array(list(refs.values()))
    rng = np.random.default_rng(2)
    weights = np.array([0.5, 0.3, 0.2])
    fragments = simulate_fragments(rng, 3000, weights, lengths, 250, 40)
    names = list(refs)
    # reads of A also align to C's... no: each fragment aligns to its own transcript, and
    # fragments inside B's first 400 bases also align to C (a shared stretch) with one mismatch
    def records(paired):
        out = []
        for i, (t, s, f) in enumerate(fragments):
            def make(h, i=i, t=t, s=s, f=f):
                if paired:
                    recs = pair(h, f"f{i}", names[t], s, s + f - READ)
                else:
                    recs = [segment(h, f"f{i}", names[t], s, score=0)]
                if t == 1 and s + f <= 400:
                    if paired:
                        recs += pair(h, f"f{i}", "C", s, s + f - READ, score=(-6, 0), secondary=True)
                    else:
                        recs.append(segment(h, f"f{i}", "C", s, score=-6, flag=0x100))
                return recs
            out.append(make)
        return out

    fits = {}
    for paired in (True, False):
        path = write_bam(tmp_path / f"{paired}.bam", records(paired), refs=refs)
        aln = read_alignments(path, fragment_length=250, fragment_length_sd=40)
        fits[paired] = TranscriptQuantifier(
            x_includes_length=True, effective_lengths=aln.effective_lengths,
            lengths=aln.transcript_lengths).fit(aln.X, sample_weight=aln.counts)
    truth = np.bincount([t for t, _, _ in fragments], minlength=3)
    for fit in fits.values():
        np.testing.assert_allclose(fit.est_counts_, truth, atol=40)
    np.testing.assert_allclose(fits[True].est_counts_, fits[False].est_counts_, atol=40)


# ------------------------------------------------------------------ bad files


def test_record_on_a_reference_missing_from_the_header(tmp_path):
    sam = tmp_path / "r.sam"
    sam.write_text("@HD\tVN:1.6\n@SQ\tSN:A\tLN:1000\n"
                   f"r1\t0\tA\t11\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\n"
                   f"r2\t0\tZ\t11\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\n")
    with pytest.raises(ValueError, match=r"r\.sam, line 4: read 'r2' is mapped to a reference"):
        read_alignments(sam, fragment_length=100)
    with pytest.raises(ValueError, match=r"r\.sam, line 4: read 'r2' is mapped to a reference"):
        read_bam(sam)


def test_no_valid_alignment_and_bad_options(tmp_path):
    path = write_bam(tmp_path / "r.bam", [lambda h: [segment(h, "u", None, 0, flag=0x4)]])
    with pytest.raises(ValueError, match="no fragment has a valid alignment"):
        read_alignments(path, fragment_length=100)
    with pytest.raises(ValueError, match="library_type"):
        read_alignments(path, library_type="XYZ")
    with pytest.raises(ValueError, match="needs fragment_length"):
        read_alignments(path, fragment_length_sd=10)
    # The documented ranges, at their boundaries: fragment_length > 0, score_scale >= 0,
    # 0 <= min_likelihood_ratio < 1 (a value inside reaches the file's own error).
    for bad in ({"fragment_length": 0}, {"fragment_length": -5}, {"fragment_length": np.inf},
                {"score_scale": -1e-9}, {"score_scale": np.nan},
                {"min_likelihood_ratio": 1}, {"min_likelihood_ratio": -1e-9}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):
            read_alignments(path, **bad)
    for good in ({"fragment_length": 0.5}, {"fragment_length": 1}, {"score_scale": 0},
                 {"min_likelihood_ratio": 0}, {"min_likelihood_ratio": 0.999}):
        with pytest.raises(ValueError, match="no fragment has a valid alignment"):
            read_alignments(path, **{"fragment_length": 100, **good})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not a valid SAM/BAM"):
            (tmp_path / "junk.bam").write_bytes(b"\x1f\x8b garbage")
            read_alignments(tmp_path / "junk.bam")


# ------------------------------------------------------------------ score scale from the header


def bam_with_program(path, program):
    """Read r1 on A (AS 0) and on B (AS -2), under a header with the @PG line ``program``."""
    head = header()
    if program is not None:
        head["PG"] = [program]
    with pysam.AlignmentFile(str(path), "wb", header=head) as out:
        out.write(segment(out.header, "r1", "A", 10, score=0))
        out.write(segment(out.header, "r1", "B", 10, score=-2, flag=0x100))
    return path


MISMATCH = np.log(0.99 / (0.01 / 3))  # log-likelihood ratio of a mismatch at 1 % error


@pytest.mark.parametrize("program, points_per_mismatch", [
    ({"ID": "bowtie2", "PN": "bowtie2", "CL": '"bowtie2-align-s --wrapper basic-0 --mp 1,1 -k 200 -x ref"'}, 1),
    ({"ID": "bowtie2", "PN": "bowtie2", "CL": "bowtie2-align-s -x ref -1 a.fq -2 b.fq"}, 6),  # --mp 6,2
    ({"ID": "bowtie2", "PN": "bowtie2", "CL": "bowtie2-align-s --local --ma 3 --mp=4,2 -x ref"}, 7),
    ({"ID": "bowtie2", "PN": "bowtie2", "CL": "bowtie2-align-s --local -x ref"}, 8),  # --ma 2 --mp 6
    ({"ID": "hisat2", "PN": "hisat2", "CL": "hisat2-align-s --mp 3 -x ref"}, 3),
    ({"ID": "bwa", "PN": "bwa", "CL": "bwa mem -t 4 ref.fa r.fq"}, 5),  # -A 1 -B 4
    ({"ID": "bwa", "PN": "bwa", "CL": "bwa mem -B 7 ref.fa r.fq"}, 8),
    ({"ID": "STAR", "PN": "STAR", "CL": "STAR --runThreadN 4"}, 2),  # +1 match, -1 mismatch
    # salmon's selective alignment: defaults --ma 2 --mp -4 (salmon's documentation)
    ({"ID": "salmon", "PN": "salmon", "CL": "salmon quant -i idx -l A --writeMappings"}, 6),
    ({"ID": "salmon", "PN": "salmon", "CL": "salmon quant --ma 3 --mp -5 -i idx"}, 8),
])
def test_score_scale_from_the_aligners_program_line(tmp_path, program, points_per_mismatch):
    aln = read_alignments(bam_with_program(tmp_path / "r.bam", program), fragment_length=100,
                          library_type="U")
    scale = MISMATCH / points_per_mismatch
    assert aln.score_scale == pytest.approx(scale)
    assert program["ID"] in aln.score_scale_source
    row = row_of(aln, "AB")
    assert row["B"] / row["A"] == pytest.approx(np.exp(-2 * scale) * 901 / 501, rel=1e-9)


def test_score_scale_without_a_known_aligner_or_given(tmp_path):
    for program in (None, {"ID": "minimap2", "PN": "minimap2", "CL": "minimap2 -ax sr"}):
        aln = read_alignments(bam_with_program(tmp_path / "r.bam", program), fragment_length=100,
                              library_type="U")
        assert aln.score_scale == 1.0 and "default" in aln.score_scale_source  # salmon's --scoreExp
    bowtie = {"ID": "bowtie2", "PN": "bowtie2", "CL": "bowtie2-align-s --mp 1,1"}
    aln = read_alignments(bam_with_program(tmp_path / "r.bam", bowtie), fragment_length=100,
                          library_type="U", score_scale=0.5)
    assert aln.score_scale == 0.5 and aln.score_scale_source == "given"
    assert row_of(aln, "AB")["B"] / row_of(aln, "AB")["A"] == pytest.approx(np.exp(-1) * 901 / 501)


def test_scale_for_nm_only_when_no_record_has_as(tmp_path):
    # one pair with AS tags, three without (NM only): the file has AS tags, no @PG: scale 1
    def pair_without_as(h, name):
        records = pair(h, name, "A", 100, 250)
        for record in records:
            record.set_tag("AS", None)
            record.set_tag("NM", 1)
        return records

    path = write_bam(tmp_path / "r.bam", [lambda h: pair(h, "f0", "A", 100, 250)]
                     + [lambda h, i=i: pair_without_as(h, f"f{i}") for i in (1, 2, 3)])
    aln = read_alignments(path, fragment_length=200, fragment_length_sd=20)
    assert aln.score_scale == 1.0
    path = write_bam(tmp_path / "nm.bam", [lambda h, i=i: pair_without_as(h, f"f{i}") for i in (1, 2)])
    assert read_alignments(path, fragment_length=200, fragment_length_sd=20).score_scale == pytest.approx(
        MISMATCH / 6)


def test_fragments_whose_scores_differ_alike_share_a_class(tmp_path):
    # each read is 2 points worse on B than on A, whatever its best score: one class, as
    # exp(s (AS_B - AS_A)) is the same number for all (scaling before subtracting splits them)
    scores = [(0, -2), (-3, -5), (-7, -9), (-11, -13)]
    path = write_bam(tmp_path / "r.bam", [
        lambda h, i=i, a=a, b=b: [segment(h, f"r{i}", "A", 10, score=a),
                                  segment(h, f"r{i}", "B", 10, score=b, flag=0x100)]
        for i, (a, b) in enumerate(scores)])
    aln = read_alignments(path, fragment_length=100, library_type="U", score_scale=np.log(297))
    assert aln.X.shape[0] == 1 and aln.counts.tolist() == [4]
    assert row_of(aln, "AB")["B"] == pytest.approx(297.0**-2 * 901 / 501, rel=1e-12)


# ------------------------------------------------------------------ blocks and filters


def test_blocks_of_records_give_the_same_classes(tmp_path, monkeypatch):
    # multi-mapped pairs, an orphan mate and a single read, in a name-grouped file read
    # a few records at a time: no fragment may be split between blocks
    rng = np.random.default_rng(3)
    records = []
    for i in range(60):
        left = int(rng.integers(0, 300))
        length = int(rng.normal(200, 20))
        records.append(lambda h, i=i, left=left, length=length: (
            pair(h, f"p{i}", "A", left, left + length - READ, score=(0, -int(i % 3)))
            + pair(h, f"p{i}", "B", left, left + length - READ, score=(-2, 0), secondary=True)
            * (i % 2)))
    records.append(lambda h: [segment(h, "orphan", "A", 30, flag=0x1 | 0x8 | 0x40, score=0),
                              segment(h, "orphan", None, 0, flag=0x1 | 0x4 | 0x80)])
    path = write_bam(tmp_path / "r.bam", records)
    whole = read_alignments(path)
    import skem.io._bam_scan as bam_module

    for block_records in (5, 100, 150):  # many blocks, and exactly two or three
        monkeypatch.setattr(bam_module.scan_alignments, "__kwdefaults__", {
            "block_records": block_records, "max_scattered_reads": bam_module.MAX_SCATTERED_READS})
        blocks = read_alignments(path)
        np.testing.assert_array_equal(blocks.X.toarray(), whole.X.toarray())
        np.testing.assert_array_equal(blocks.counts, whole.counts)
        np.testing.assert_array_equal(blocks.fragment_length_pmf, whole.fragment_length_pmf)
        assert (blocks.n_fragments, blocks.n_unassigned, blocks.library_type) == (
            61, 0, whole.library_type)
    assert whole.counts.sum() == 61


def test_the_first_read_scattered_in_the_first_block_is_one_fragment(tmp_path):
    from skem.io._bam_scan import scan_alignments

    reads = [f"r{i}" for i in range(8)]
    grouped = [lambda h, n=n: [segment(h, n, "A", 10, score=0),
                               segment(h, n, "B", 10, score=0, flag=0x100)] for n in reads]
    # the first read's secondary record after the second read's record, within the first block
    # of three records
    scattered = ([lambda h: [segment(h, "r0", "A", 10, score=0)],
                  lambda h: [segment(h, "r1", "A", 10, score=0)],
                  lambda h: [segment(h, "r0", "B", 10, score=0, flag=0x100)]] + grouped[2:])
    path = write_bam(tmp_path / "r.bam", scattered)
    scan = scan_alignments(path, block_records=3)
    assert scan.n_fragments == 8
    aln = read_alignments(path, fragment_length=100, library_type="U")
    assert sorted(aln.counts.tolist()) == [1, 7] and aln.counts.sum() == 8


def test_paired_qc_failed_and_supplementary_records_are_skipped(tmp_path):
    # The record filter holds for mates too: a QC-failed or supplementary mate adds nothing.
    proper = lambda h: pair(h, "p", "A", 100, 250)  # noqa: E731

    def flagged(bits):
        def make(h):
            records = pair(h, "p", "B", 100, 250, secondary=True)
            for record in records:
                record.flag |= bits
            return records
        return make

    rows = []
    for records in ([proper], [proper, flagged(0x200)], [proper, flagged(0x800)]):
        path = write_bam(tmp_path / f"p{len(rows)}.bam", records)
        aln = read_alignments(path, fragment_length=200, library_type="U")
        rows.append((aln.X.toarray().tolist(), aln.counts.tolist(), aln.n_fragments))
        assert read_bam(path).X.toarray().tolist() == [[1, 0]]
    assert rows[0] == rows[1] == rows[2]


def test_qc_failed_records_are_skipped_by_both_readers(tmp_path):
    # r1: on A, and on B in a QC-failed record; r2: only a QC-failed record
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 10, score=0), segment(h, "r1", "B", 10, score=0, flag=0x300)],
        lambda h: [segment(h, "r2", "B", 20, score=0, flag=0x200)],
    ])
    compatible = read_bam(path)
    np.testing.assert_array_equal(compatible.X.toarray(), [[1, 0], [0, 0]])
    aln = read_alignments(path, fragment_length=100)
    assert aln.X.toarray().tolist() == [[1.0, 0.0]] and aln.n_unassigned == 1


# ------------------------------------------------------------------ record order


def mixed_fragments(rng, n=30):
    """Pairs (some multi-mapped, on A and on B), an orphan mate, a pair with a stray mate record."""
    out = []
    for i in range(n):
        left = int(rng.integers(0, 300))
        length = int(rng.normal(200, 20))
        out.append(lambda h, i=i, left=left, length=length: (
            pair(h, f"p{i}", "A", left, left + length - READ, score=(0, -int(i % 3)))
            + pair(h, f"p{i}", "B", left + 5, left + 5 + length - READ, score=(-2, 0), secondary=True)
            * (i % 2)))
    out.append(lambda h: [segment(h, "orphan", "A", 30, flag=0x1 | 0x8 | 0x40, score=0),
                          segment(h, "orphan", None, 0, flag=0x1 | 0x4 | 0x80)])
    out.append(lambda h: pair(h, "stray", "A", 40, 200)
               + [segment(h, "stray", "B", 70, flag=0x1 | 0x100 | 0x40, score=-4, mate=("B", 0))])
    return out


def reordered(tmp_path, records, refs=REFS):
    """The same records written in five orders: {name: path}, with the SO each header claims."""
    with pysam.AlignmentFile(str(tmp_path / "src.bam"), "wb", header=header(refs)) as out:
        for make in records:
            for record in make(out.header):
                out.write(record)
    with pysam.AlignmentFile(str(tmp_path / "src.bam")) as source:
        grouped = list(source.fetch(until_eof=True))
    rng = np.random.default_rng(7)
    unmapped_last = (lambda a: (a.reference_id < 0, a.reference_id, a.reference_start))
    orders = {
        "grouped": (grouped, "unsorted"),
        "shuffled": ([grouped[i] for i in rng.permutation(len(grouped))], "unsorted"),
        "name-sorted": (sorted(grouped, key=lambda a: a.query_name), "queryname"),
        "coordinate-sorted": (sorted(grouped, key=unmapped_last), "coordinate"),
        "coordinate, header says unsorted": (sorted(grouped, key=unmapped_last), "unsorted"),
        "read 1 records first": (sorted(grouped, key=lambda a: a.is_read2), "unsorted"),
        "secondary records last": (sorted(grouped, key=lambda a: a.is_secondary), "unsorted"),
    }
    paths = {}
    for i, (name, (order, so)) in enumerate(orders.items()):
        path = tmp_path / f"{i}.bam"
        with pysam.AlignmentFile(str(path), "wb", header=header(refs, so)) as out:
            for record in order:
                out.write(record)
        paths[name] = path
    return paths


def same_classes(a, b):
    np.testing.assert_allclose(a.X.toarray(), b.X.toarray(), rtol=1e-12)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(a.fragment_length_pmf, b.fragment_length_pmf, rtol=1e-12)
    assert (a.n_fragments, a.n_unassigned, a.library_type) == (b.n_fragments, b.n_unassigned, b.library_type)


def test_any_record_order_gives_the_same_classes(tmp_path):
    records = mixed_fragments(np.random.default_rng(5))
    paths = reordered(tmp_path, records)
    results = {name: read_alignments(path) for name, path in paths.items()}
    reference = results["grouped"]
    assert reference.n_fragments == 32 and reference.counts.sum() == 32
    for name, result in results.items():
        same_classes(result, reference)
        compatible = read_bam(paths[name])
        assert compatible.X.shape == (32, 2)


def test_single_end_secondaries_after_other_reads_are_one_read(tmp_path):
    # 60 reads on A; every second one also on B, its secondary record written after all primaries
    records = [lambda h, i=i: [segment(h, f"r{i}", "A", 10 + i, score=0)]
               + [segment(h, f"r{i}", "B", 10 + i, score=-1, flag=0x100)] * (i % 2) for i in range(60)]
    paths = reordered(tmp_path, records)
    results = {name: read_alignments(path, fragment_length=100, library_type="U")
               for name, path in paths.items()}
    for result in results.values():
        assert result.n_fragments == 60 and result.counts.sum() == 60
        same_classes(result, results["grouped"])
    fit = TranscriptQuantifier(x_includes_length=True, effective_lengths=results["secondary records last"]
                               .effective_lengths).fit(results["secondary records last"].X,
                                                       sample_weight=results["secondary records last"].counts)
    assert fit.est_counts_.sum() == pytest.approx(60)


def test_read_1_records_before_read_2_records_through_the_cli(tmp_path):
    from skem.cli import main

    records = [lambda h, i=i: pair(h, f"p{i}", "A", 100 + i, 250 + i) for i in range(40)]
    path = reordered(tmp_path, records)["read 1 records first"]
    assert main(["quant", "--alignments", str(path), "--fragment-length", "200", "--fragment-sd", "20",
                 "-o", str(tmp_path / "out")]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    assert table["est_counts"].sum() == pytest.approx(40)


def test_blocks_of_a_scattered_file_and_the_bound_on_scattered_reads(tmp_path, capfd):
    from skem.io._bam_scan import scan_alignments

    records = mixed_fragments(np.random.default_rng(6))
    paths = reordered(tmp_path, records)
    whole = scan_alignments(paths["shuffled"])
    small = scan_alignments(paths["shuffled"], block_records=3)
    assert len(small.blocks) > len(whole.blocks) and small.n_fragments == whole.n_fragments == 32
    for key in ("fragment", "transcript", "extent", "score"):
        both = [np.concatenate([b[key] for b in scan.blocks]) for scan in (whole, small)]
        np.testing.assert_array_equal(*both)
    # a grouped file found scattered only in a later block is read again by name
    late = scan_alignments(paths["secondary records last"], block_records=3)
    assert late.n_fragments == 32
    with pytest.raises(ValueError, match=r"1\.bam, record \d+: read '\w+' recurs.*samtools collate"):
        scan_alignments(paths["shuffled"], max_scattered_reads=5)
    # every one of the 32 reads has records apart: 32 is within the bound, 31 is not
    assert scan_alignments(paths["shuffled"], max_scattered_reads=32).n_fragments == 32
    with pytest.raises(ValueError, match="about 32 reads are not adjacent"):
        scan_alignments(paths["shuffled"], max_scattered_reads=31)
    # a damaged file is named wherever the pass that meets the damage is (names only, here)
    cut = tmp_path / "cut.bam"
    with pysam.AlignmentFile(str(paths["shuffled"])) as source:
        records = list(source.fetch(until_eof=True))
    with pysam.AlignmentFile(str(cut), "wb", header=header()) as out:
        for record in records * 400:  # enough records for several BGZF blocks
            out.write(record)
    damaged = cut.read_bytes()
    middle = len(damaged) * 2 // 3  # garbage in a later BGZF block; the EOF marker intact
    (tmp_path / "damaged.bam").write_bytes(damaged[:middle] + b"\x00" * 64 + damaged[middle + 64:])
    capfd.readouterr()
    previous = pysam.set_verbosity(2)
    try:
        with pytest.raises(ValueError, match=r"damaged\.bam, record \d+: not a valid SAM/BAM"):
            scan_alignments(tmp_path / "damaged.bam", block_records=3)
        assert pysam.get_verbosity() == 2  # the caller's htslib verbosity is given back
    finally:
        pysam.set_verbosity(previous)
    assert capfd.readouterr().err == ""  # htslib's own messages are kept off stderr


# ------------------------------------------------------------------ fragment lengths


def test_fragment_lengths_are_learned_from_uniquely_aligned_proper_pairs_only(tmp_path):
    rng = np.random.default_rng(8)
    unique = rng.normal(200, 10, 50).round().astype(int)
    records = [lambda h, i=i, f=f: pair(h, f"u{i}", "A", 100, 100 + f - READ) for i, f in enumerate(unique)]
    # multi-mapped 450-bp pairs, their secondary pair written after all other reads
    multi = [lambda h, i=i: pair(h, f"m{i}", "A", 50, 50 + 450 - READ) for i in range(50)]
    later = [lambda h, i=i: pair(h, f"m{i}", "B", 20, 20 + 450 - READ, secondary=True) for i in range(50)]
    # a 300-bp pair whose read 1 also aligns alone elsewhere: not unique either
    stray = [lambda h, i=i: pair(h, f"s{i}", "A", 300, 300 + 300 - READ)
             + [segment(h, f"s{i}", "B", 5, flag=0x1 | 0x100 | 0x40, score=-3, mate=("B", 0))]
             for i in range(20)]

    def unflagged(bits):  # 450-bp pairs without some flag bits: not proper pairs (SAM spec:
        # without 0x1, nothing may be assumed of 0x2, 0x40 and 0x80)
        def make(h, name):
            records = pair(h, name, "A", 40, 40 + 450 - READ)
            for record in records:
                record.flag &= ~bits
            return records
        return make

    improper = [lambda h, i=i: unflagged(0x2)(h, f"d{i}") for i in range(20)]
    unpaired = [lambda h, i=i: unflagged(0x1)(h, f"x{i}") for i in range(20)]
    aln = read_alignments(write_bam(tmp_path / "r.bam",
                                    records + multi + stray + improper + unpaired + later))
    assert aln.n_fragments == 160
    # brute force: the histogram of the unique pairs' lengths, with 1 % of a normal of its moments
    histogram = np.bincount(unique, minlength=1001)[:1001].astype(float)
    f = np.arange(1001)
    mean = histogram @ f / histogram.sum()
    sd = np.sqrt(histogram @ (f - mean) ** 2 / histogram.sum())
    normal = np.r_[0.0, norm.pdf(f[1:], mean, sd)]
    expected = 0.99 * histogram / histogram.sum() + 0.01 * normal / normal.sum()
    np.testing.assert_allclose(aln.fragment_length_pmf, expected / expected.sum(), rtol=1e-9, atol=1e-15)


def test_fragment_length_longer_than_every_transcript_is_one_clear_error(tmp_path):
    path = write_bam(tmp_path / "r.bam", [lambda h: [segment(h, "r1", "A", 10, score=0)]])
    for options in ({"fragment_length": 5000}, {"fragment_length": 5000, "fragment_length_sd": 100}):
        with pytest.raises(ValueError, match=r"r\.bam: no fragment .* fits any transcript: the longest is 1000"):
            read_alignments(path, **options)


def test_transcripts_far_in_the_fragment_lengths_tail_get_the_right_probabilities(tmp_path):
    # mean 1100, sd 12: B (600) lies 42 sd below the mean, where P(f <= 600) underflows in linear
    # space; the model still gives its reads a definite probability (fragments of about 600)
    mean, sd = 1100.0, 12.0
    path = write_bam(tmp_path / "r.bam", [
        lambda h: [segment(h, "r1", "A", 0, score=0), segment(h, "r1", "B", 0, score=0, flag=0x100)],
        lambda h: [segment(h, "r2", "B", 0, score=0)],
    ])
    aln = read_alignments(path, fragment_length=mean, fragment_length_sd=sd, library_type="U")
    from scipy.special import logsumexp

    def log_start_probability(L, room):
        f = np.arange(1, 1101 + 120)
        lp = norm.logpdf(f, mean, sd)
        fits = f <= min(room, L)
        return logsumexp(lp[fits] - np.log(L - f[fits] + 1)) - logsumexp(lp[f <= L])

    expected = np.exp(log_start_probability(600, 600) - log_start_probability(1000, 1000))
    rows = {tuple(np.flatnonzero(row)) for row in aln.X.toarray()}
    assert rows == {(0, 1), (1,)}
    both = aln.X.toarray()[[i for i in range(2) if aln.X[i].nnz == 2][0]]
    assert both[1] / both[0] == pytest.approx(expected, rel=1e-9)


def test_single_read_sums_against_brute_force():
    from skem.io._bam_likelihood import single_read_log_prob
    from skem.transcripts import fragment_log_pmf

    rng = np.random.default_rng(9)
    log_pmf = fragment_log_pmf(180.0, 40.0)
    pmf = np.exp(log_pmf - log_pmf.max())
    L = rng.choice([30, 150, 999, 1000, 1001, 2500], size=200)
    room = np.minimum(rng.integers(0, 1200, size=200), L + 50)
    expected = np.empty(200)
    for i in range(200):
        f = np.arange(1, min(room[i], L[i], 1000) + 1)
        with np.errstate(divide="ignore"):
            expected[i] = np.log(np.sum(pmf[f] / (L[i] - f + 1))) - np.log(pmf[1:min(L[i], 1000) + 1].sum())
    for entries in (1 << 20, 1001, 5):  # the table built for all lengths at once, one or one at a time
        np.testing.assert_allclose(single_read_log_prob(room, np.arange(200), L, log_pmf, table_entries=entries),
                                   expected, rtol=1e-10)


def test_a_score_tag_that_is_not_a_number_is_named(tmp_path):
    sam = tmp_path / "r.sam"
    sam.write_text("@HD\tVN:1.6\n@SQ\tSN:A\tLN:1000\n"
                   f"r1\t0\tA\t11\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\tAS:i:0\n"
                   f"r2\t0\tA\t11\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\tAS:Z:high\n")
    with pytest.raises(ValueError, match=r"r\.sam, line 4: read 'r2' has an AS or NM tag that is not a number"):
        read_alignments(sam, fragment_length=100)


def test_reads_without_a_name_are_one_fragment_per_run(tmp_path):
    # QNAME "*": pysam gives None; the first record must still start a fragment
    sam = tmp_path / "r.sam"
    sam.write_text("@HD\tVN:1.6\n@SQ\tSN:A\tLN:1000\n"
                   f"*\t0\tA\t11\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\tAS:i:0\n"
                   f"r2\t0\tA\t21\t255\t{READ}M\t*\t0\t0\t{'A' * READ}\t*\tAS:i:0\n")
    aln = read_alignments(sam, fragment_length=100)
    assert aln.n_fragments == 2 and aln.counts.sum() == 2


def test_fragment_lengths_of_one_length_get_a_normal_of_sd_one(tmp_path):
    # every unique pair is 200 bp: the histogram's sd is 0, the mixed-in normal's is 1
    records = [lambda h, i=i: pair(h, f"u{i}", "A", 100, 100 + 200 - READ) for i in range(20)]
    aln = read_alignments(write_bam(tmp_path / "r.bam", records))
    normal = np.r_[0.0, norm.pdf(np.arange(1, 1001), 200, 1)]
    expected = 0.01 * normal / normal.sum()
    expected[200] += 0.99
    np.testing.assert_allclose(aln.fragment_length_pmf, expected / expected.sum(), rtol=1e-9, atol=1e-300)


def test_a_pair_as_long_as_its_transcript_has_one_start(tmp_path):
    # on B (600) the pair covers the whole transcript, f = L: P(600) / P(f <= 600) / 1
    mean, sd = 500.0, 60.0
    path = write_bam(tmp_path / "r.bam", [
        lambda h: pair(h, "f1", "A", 100, 100 + 600 - READ)
        + pair(h, "f1", "B", 0, 600 - READ, secondary=True),
    ])
    aln = read_alignments(path, fragment_length=mean, fragment_length_sd=sd)
    p = normal_pmf(mean, sd)
    a = p[600] / p[:1001].sum() / (1000 - 600 + 1)
    b = p[600] / p[:601].sum() / 1
    row = row_of(aln, "AB")
    assert row["B"] / row["A"] == pytest.approx(b / a, rel=1e-9)


def test_read_bam_rows_are_the_transcripts_both_mates_align_to(tmp_path):
    # The docstring's rule by sets: read 1 on A and B, read 2 on B only -> {B}; mates with no
    # transcript in common -> an empty row; one mate unmapped -> the other mate's transcripts.
    def mate(h, name, ref, first, secondary=False):
        flag = 0x1 | (0x40 if first else 0x80) | (0x100 if secondary else 0)
        return segment(h, name, ref, 10, flag=flag, score=0)

    path = write_bam(tmp_path / "r.bam", [
        lambda h: [mate(h, "both", "A", True), mate(h, "both", "B", True, secondary=True),
                   mate(h, "both", "B", False)],
        lambda h: [mate(h, "apart", "A", True), mate(h, "apart", "B", False)],
        lambda h: [mate(h, "lone", "A", True), mate(h, "lone", "B", True, secondary=True),
                   segment(h, "lone", None, 0, flag=0x1 | 0x4 | 0x80)],
    ])
    compatible = read_bam(path)
    assert compatible.X.toarray().tolist() == [[0, 1], [0, 0], [1, 1]]


def test_only_pysams_closing_failures_are_kept_from_the_unraisable_hook(monkeypatch):
    from skem.io._bam_scan import _unraisable_close_failures_silenced

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with _unraisable_close_failures_silenced():
        for exc in (OSError("Closing failed"), OSError("disk full"), ValueError("Closing failed")):
            sys.unraisablehook(types.SimpleNamespace(exc_value=exc))
    assert [type(u.exc_value).__name__ + ": " + str(u.exc_value) for u in seen] == [
        "OSError: disk full", "ValueError: Closing failed"]
    assert sys.unraisablehook == seen.append  # restored


def test_a_transcript_of_length_zero_in_the_header_is_refused(tmp_path):
    # SAM spec: LN is in [1, 2^31 - 1] (htslib refuses LN:0 in SAM text itself, not in a BAM
    # header); a zero length is refused before any record is read.
    from skem.io._bam_scan import read_header

    for length in (0, 1):
        path = tmp_path / f"z{length}.bam"
        refs = [{"SN": "A", "LN": 1000}, {"SN": "Z", "LN": length}]
        with pysam.AlignmentFile(str(path), "wb", header={"HD": {"VN": "1.6"}, "SQ": refs}):
            pass  # the header alone
        if length:
            assert read_header(path)[2].tolist() == [1000, 1]
            continue
        for read in (read_header, read_bam, read_alignments):
            with pytest.raises(ValueError, match=r"z0\.bam, header: transcript 'Z' has length 0"):
                read(path)


def test_learned_fragment_lengths_against_the_histogram_of_extents():
    # learned_log_pmf on blocks built by hand: the extents of unique proper pairs in
    # 1..support (a 1-bp fragment counts), 99 % histogram plus 1 % of a normal of its moments;
    # a mean near the support's end (the normal reaches past it).
    from skem.io._bam_likelihood import learned_log_pmf
    from skem.io._bam_scan import PAIR, SINGLE

    support = 1000
    extent = np.array([1, 1, 990, 995, 995, 1000, 1001, 0, 700, 990], dtype=np.int32)
    unique = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)[: extent.size]
    kind = np.array([PAIR] * 9 + [SINGLE], dtype=np.int8)
    blocks = [{"extent": extent[:5], "unique": unique[:5], "kind": kind[:5]},
              {"extent": np.r_[extent[5:], [998] * 4].astype(np.int32),
               "unique": np.r_[unique[5:], [True] * 4], "kind": np.r_[kind[5:], [PAIR] * 4]}]
    counted = [1, 1, 990, 995, 995, 1000, 998, 998, 998, 998]  # not 1001, 0, 700 (multi), single
    histogram = np.bincount(counted, minlength=support + 1).astype(float)
    f = np.arange(support + 1)
    mean = histogram @ f / histogram.sum()
    sd = np.sqrt(histogram @ (f - mean) ** 2 / histogram.sum())
    normal = np.r_[0.0, norm.pdf(f[1:], mean, sd)]
    expected = 0.99 * histogram / histogram.sum() + 0.01 * normal / normal.sum()
    np.testing.assert_allclose(np.exp(learned_log_pmf(blocks, support)), expected,
                               rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("n_forward, paired, expected", [
    (0, False, "SR"), (1, False, "SR"), (2, False, "U"), (5, True, "IU"), (8, False, "U"),
    (9, True, "ISF"), (10, False, "SF"),
])
def test_library_type_is_stranded_past_80_percent_of_unique_fragments(n_forward, paired,
                                                                      expected):
    # salmon's rule as documented: stranded when more than 80 % agree (exactly 80 % is not)
    from skem.io._bam_likelihood import detect_library_type

    forward = np.arange(12) < n_forward
    unique = np.r_[np.ones(10, bool), [False, False]]  # two multi-mapped fragments do not vote
    forward[10:] = n_forward < 5
    blocks = [{"unique": unique[:4], "forward": forward[:4]},
              {"unique": unique[4:], "forward": forward[4:]}]
    assert detect_library_type(blocks, "A", paired) == expected
    assert detect_library_type(blocks, "SR", paired) == ("ISR" if paired else "SR")
    assert detect_library_type([], "A", paired) == ("IU" if paired else "U")


@pytest.mark.parametrize("table_entries", [1 << 20, 2000])
def test_single_read_probabilities_against_the_sum_over_fragment_lengths(table_entries):
    # P(read at its start | transcript) = sum_{f <= min(room, L)} P(f) / (L - f + 1) / P(f <= L),
    # by brute force; 0 where no fragment length of positive probability fits the transcript
    from skem.io._bam_likelihood import single_read_log_prob

    p = normal_pmf(200, 1.4)
    p = 0.99 * (np.arange(1001) == 200) + 0.01 * p  # the 1 % normal underflows below ~150
    lengths = np.array([60, 150, 199, 200, 230, 1000, 1500])
    rng = np.random.default_rng(5)
    transcript = rng.integers(0, lengths.size, 200)
    room = rng.integers(1, 1600, 200)
    with np.errstate(divide="ignore"):
        ours = single_read_log_prob(room, transcript, lengths, np.log(p),
                                    table_entries=table_entries)
    f = np.arange(1001)
    for r, t, value in zip(room, transcript, ours):
        L = lengths[t]
        fits = (f >= 1) & (f <= min(r, L))
        total = p[: L + 1].sum()
        expected = np.sum(p[fits] / (L - f[fits] + 1)) / total if total > 0 else 0.0
        if expected == 0.0:
            assert value == -np.inf
        else:
            assert value == pytest.approx(np.log(expected), rel=1e-9)
