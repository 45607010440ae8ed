"""Readers and writers of the quantifiers' files, on small files written here (good and malformed)."""

from __future__ import annotations

import gzip
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads
from skem.io import (
    alignments_to_matrix,
    lengths_file_kind,
    read_bam,
    read_kallisto_abundance,
    read_kallisto_tcc,
    read_lengths,
    read_salmon_eq_classes,
    read_salmon_quant,
    write_kallisto_abundance,
    write_salmon_dir,
    write_salmon_quant,
)

NAMES = ["ENST1", "ENST2", "ENST3"]


def write(path, text, compress=False):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def error_at(path, line):
    """pytest.raises for a ValueError naming ``path`` and ``line``."""
    return pytest.raises(ValueError, match=re.escape(f"{path}, line {line}:"))


def salmon_dump(classes, names=NAMES, weights=None):
    """Text of an eq_classes.txt: classes = [(tids, count)], weights = per-class lists or None."""
    lines = [str(len(names)), str(len(classes)), *names]
    for i, (tids, count) in enumerate(classes):
        fields = [len(tids), *tids, *(weights[i] if weights else []), count]
        lines.append("\t".join(map(str, fields)))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ salmon


@pytest.mark.parametrize("compress", [False, True])
def test_salmon_eq_classes_without_weights(tmp_path, compress):
    path = write(tmp_path / "eq_classes.txt", salmon_dump([([0, 1], 10), ([2], 4), ([1, 2], 1)]), compress)
    eq = read_salmon_eq_classes(path)
    np.testing.assert_array_equal(eq.X.toarray(), [[1, 1, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(eq.counts, [10, 4, 1])
    assert list(eq.transcript_names) == NAMES and eq.weighted is False


def test_salmon_eq_classes_listed_in_any_order_give_a_canonical_matrix(tmp_path):
    # salmon lists a class's transcripts in no promised order; the matrix is canonical CSR
    # (sorted indices, as scipy's own constructors give) with each weight on its transcript
    text = salmon_dump([([2, 0, 1], 5), ([1, 0], 2)], weights=[[0.5, 0.2, 0.3], [0.9, 0.1]])
    eq = read_salmon_eq_classes(write(tmp_path / "eq_classes.txt", text))
    np.testing.assert_allclose(eq.X.toarray(), [[0.2, 0.3, 0.5], [0.1, 0.9, 0.0]])
    assert eq.X.has_sorted_indices
    assert all(np.all(np.diff(eq.X[i].indices) > 0) for i in range(eq.X.shape[0]))


def test_salmon_eq_classes_with_weights_keep_duplicate_sets(tmp_path):
    text = salmon_dump(
        [([0, 1], 10), ([0, 1], 3), ([2], 4)], weights=[[0.25, 0.75], [0.5, 0.5], [1.0]]
    )
    eq = read_salmon_eq_classes(write(tmp_path / "eq_classes.txt.gz", text, compress=True))
    assert eq.weighted is True
    np.testing.assert_allclose(eq.X.toarray(), [[0.25, 0.75, 0], [0.5, 0.5, 0], [0, 0, 1]])
    np.testing.assert_array_equal(eq.counts, [10, 3, 4])


def test_fitting_salmon_weights_reproduces_the_length_aware_fit(tmp_path):
    """Salmon's weights contain 1/eff_length and sum to 1 per class: fit them as they are."""
    X, counts, truth = make_transcript_reads(5000, n_genes=10, random_state=4)
    eff = truth.effective_lengths
    weights = sp.csr_matrix(X.multiply(1.0 / eff[None, :]))
    weights = sp.csr_matrix(weights.multiply(1.0 / weights.sum(axis=1)))
    names = [f"tx{i}" for i in range(X.shape[1])]
    classes = [(list(weights[i].indices), int(counts[i])) for i in range(X.shape[0])]
    per_class = [[repr(float(v)) for v in weights[i].data] for i in range(X.shape[0])]
    path = write(tmp_path / "eq_classes.txt", salmon_dump(classes, names, per_class))
    quant = pd.DataFrame({"Name": names, "Length": truth.lengths.astype(int),
                          "EffectiveLength": eff, "TPM": 0.0, "NumReads": 0.0})
    quant.to_csv(tmp_path / "quant.sf", sep="\t", index=False)

    eq = read_salmon_eq_classes(path)
    salmon_eff = read_salmon_quant(tmp_path / "quant.sf")["EffectiveLength"].to_numpy()
    # one plain-EM trajectory of fixed length: fits stopped by a rule may sit a fraction of a
    # read apart along this problem's near-flat directions after different rounding
    fixed = dict(accelerate="none", tol=0, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = TranscriptQuantifier(
            effective_lengths=salmon_eff, x_includes_length=eq.weighted,
            transcript_names=eq.transcript_names, **fixed,
        ).fit(eq.X, sample_weight=eq.counts)
        reference = TranscriptQuantifier(effective_lengths=eff, **fixed).fit(X, sample_weight=counts)
    np.testing.assert_allclose(model.est_counts_, reference.est_counts_, rtol=1e-6, atol=1e-6)
    assert list(model.abundance_["target_id"]) == names


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("3\nx\nA\nB\nC\n", 2, "integer"),
        ("3\n1\nA\nB\n", 4, "ends after 2 of 3 transcript names"),
        ("3\n1\nA\nB\nA\n1\t0\t5\n", 5, "repeats line 3"),
        ("3\n2\nA\nB\nC\n2\t0\t1\t7\n", 6, "ends after 1 of the 2"),
        ("3\n1\nA\nB\nC\n2\t0\t1\t7\n1\t2\t3\n", 7, "more than the 1"),
        ("3\n1\nA\nB\nC\n2\t0\t5\t7\n", 6, "out of range"),
        ("3\n1\nA\nB\nC\n2\t0\t1\t7\t8\n", 6, "needs 4 fields"),
        ("3\n1\nA\nB\nC\n2\t0\t0\t7\n", 6, "repeats within"),
        ("3\n1\nA\nB\nC\n2\t0\t1\tseven\n", 6, "read count"),
        ("3\n1\nA\nB\nC\n2\t0\t1\t0.5\t-0.5\t7\n", 6, "weight"),
        ("3\n2\nA\nB\nC\n1\t0\t7\n1\t1\t1.0\t7\n", 7, "some classes have weights"),
        ("3\n1\nA\nB\nC\n0\t7\n", 6, ">= 1"),
    ],
)
def test_salmon_eq_classes_malformed(tmp_path, text, line, message):
    path = write(tmp_path / "eq_classes.txt", text)
    with error_at(path, line) as error:
        read_salmon_eq_classes(path)
    assert message in str(error.value)


def test_salmon_eq_classes_corrupt_gzip(tmp_path):
    path = tmp_path / "eq_classes.txt.gz"
    path.write_bytes(gzip.compress(salmon_dump([([0], 1)]).encode())[:25])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_salmon_eq_classes(path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_bytes_that_are_not_utf8_are_named_on_their_line(tmp_path, compress, ending):
    # far past the first 8 KiB, which a text decoder reads ahead of the lines it returns
    n = 4000
    classes = [([i % 3], i + 1) for i in range(n)]
    lines = salmon_dump(classes).splitlines()
    bad = 3 + len(NAMES) + 2900  # a class line, 1-based
    lines[bad - 1] = lines[bad - 1].replace("\t", "\t\xff", 1)
    data = ending.join(lines).encode("latin-1") + ending.encode()
    path = tmp_path / "eq_classes.txt"
    path.write_bytes(gzip.compress(data) if compress else data)
    with error_at(path, bad) as error:
        read_salmon_eq_classes(path)
    assert "not UTF-8" in str(error.value)
    # the same file without the bad byte reads, with the same line count
    path.write_bytes(data.replace(b"\xff", b""))
    assert read_salmon_eq_classes(path).X.shape == (n, len(NAMES))


def test_salmon_quant_and_lengths(tmp_path):
    text = "Name\tLength\tEffectiveLength\tTPM\tNumReads\nA\t1000\t851.5\t100.0\t20\nB\t300\t151\t0\t0\n"
    path = write(tmp_path / "quant.sf", text)
    table = read_salmon_quant(path)
    assert list(table.columns) == ["Name", "Length", "EffectiveLength", "TPM", "NumReads"]
    np.testing.assert_array_equal(table["EffectiveLength"], [851.5, 151])
    lengths = read_lengths(path)
    assert list(lengths.index) == ["A", "B"] and list(lengths) == [1000, 300]
    effective = read_lengths(path, effective=True)
    assert list(effective) == [851.5, 151] and effective.name == "eff_length"
    assert lengths_file_kind(path) == "salmon"


def test_kallisto_abundance_effective_lengths(tmp_path):
    text = "target_id\tlength\teff_length\test_counts\ttpm\nA\t1000\t801.5\t3\t1\n"
    path = write(tmp_path / "abundance.tsv", text)
    assert lengths_file_kind(path) == "kallisto"
    assert list(read_lengths(path, effective=True)) == [801.5]
    table = write(tmp_path / "two.tsv", "A\t100\n")
    assert lengths_file_kind(table) == "table"
    with pytest.raises(ValueError, match="no effective lengths"):
        read_lengths(table, effective=True)


def test_zero_effective_length_names_the_transcript(tmp_path):
    text = "Name\tLength\tEffectiveLength\tTPM\tNumReads\nA\t1000\t851\t1\t2\nB\t30\t0\t0\t0\n"
    path = write(tmp_path / "quant.sf", text)
    with pytest.raises(ValueError, match=r"line 3: transcript 'B' has EffectiveLength 0"):
        read_lengths(path, effective=True)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("Name\tLength\tTPM\n", 1, "expected the header"),
        ("Name\tLength\tEffectiveLength\tTPM\tNumReads\nA\t1000\t851\t1\n", 2, "expected 5"),
        ("Name\tLength\tEffectiveLength\tTPM\tNumReads\nA\t1000\t851\t1\t2\nB\tlong\t1\t1\t1\n", 3, "Length"),
        ("Name\tLength\tEffectiveLength\tTPM\tNumReads\nA\t1\t1\t1\t2\n\nA\t1\t1\t1\t1\n", 4, "repeats line 2"),
    ],
)
def test_salmon_quant_malformed(tmp_path, text, line, message):
    path = write(tmp_path / "quant.sf", text)
    with error_at(path, line) as error:
        read_salmon_quant(path)
    assert message in str(error.value)


def test_two_column_lengths_with_and_without_header(tmp_path):
    plain = read_lengths(write(tmp_path / "a.tsv", "A\t100\nB\t250.5\n"))
    headed = read_lengths(write(tmp_path / "b.tsv", "name\tlength\nA\t100\nB\t250.5\n"))
    pd.testing.assert_series_equal(plain, headed)
    assert plain["B"] == 250.5
    bad = write(tmp_path / "c.tsv", "A\t100\nB\t-3\n")
    with error_at(bad, 2) as error:
        read_lengths(bad)
    assert "transcript 'B' has length '-3'; lengths must be positive" in str(error.value)
    bad = write(tmp_path / "d.tsv", "A\t100\nB\t3\textra\n")
    with error_at(bad, 2):
        read_lengths(bad)
    bad = write(tmp_path / "e.tsv", "A\t100\nB\t0\n")
    with error_at(bad, 2) as error:
        read_lengths(bad)
    assert "transcript 'B'" in str(error.value)
    bad = write(tmp_path / "f.tsv", "name\tlength\nA\t100\nB\t3\nA\t7\n")
    with error_at(bad, 4) as error:
        read_lengths(bad)
    assert "'A' repeats line 2" in str(error.value)


@pytest.mark.parametrize("missing", ["NA", "nan", "NaN", "", "NULL", "N/A"])
def test_a_first_line_with_a_missing_length_is_not_a_header(tmp_path, missing):
    """Issue 20: ``A<TAB>NA`` was taken for a header and transcript A disappeared."""
    bad = write(tmp_path / "lengths.tsv", f"A\t{missing}\nB\t100\n")
    with error_at(bad, 1) as error:
        read_lengths(bad)
    assert "the length of 'A'" in str(error.value)


# ---------------------------------------------------------------- kallisto


def kallisto_files(tmp_path, counts_text):
    ec = write(tmp_path / "matrix.ec", "0\t0\n1\t1\n2\t2\n3\t0,1\n4\t1,2\n")
    names = write(tmp_path / "transcripts.txt", "\n".join(NAMES) + "\n")
    counts = write(tmp_path / "counts.txt", counts_text)
    return ec, names, counts


def test_kallisto_tcc_with_two_column_counts(tmp_path):
    eq = read_kallisto_tcc(*kallisto_files(tmp_path, "0\t5\n3\t12\n4\t2\n"))
    assert eq.X.shape == (5, 3) and eq.weighted is False
    np.testing.assert_array_equal(eq.X[3].toarray(), [[1, 1, 0]])
    np.testing.assert_array_equal(eq.counts, [5, 0, 0, 12, 2])
    assert list(eq.transcript_names) == NAMES


def test_kallisto_tcc_with_matrix_market_counts(tmp_path):
    mtx = "%%MatrixMarket matrix coordinate real general\n% two samples\n2 5 4\n1 1 5\n1 4 12\n2 4 3\n2 5 1\n"
    files = kallisto_files(tmp_path, mtx)
    np.testing.assert_array_equal(read_kallisto_tcc(*files, sample=0).counts, [5, 0, 0, 12, 0])
    np.testing.assert_array_equal(read_kallisto_tcc(*files, sample=1).counts, [0, 0, 0, 3, 1])
    np.testing.assert_array_equal(read_kallisto_tcc(*files).counts, [5, 0, 0, 15, 1])


def test_kallisto_tcc_fits_like_the_classes(tmp_path):
    eq = read_kallisto_tcc(*kallisto_files(tmp_path, "0\t50\n1\t10\n2\t30\n3\t120\n4\t40\n"))
    model = TranscriptQuantifier(transcript_names=eq.transcript_names).fit(eq.X, sample_weight=eq.counts)
    assert model.est_counts_.sum() == pytest.approx(250)
    assert model.est_counts_[0] > model.est_counts_[1]


@pytest.mark.parametrize(
    "which, text, line, message",
    [
        ("ec", "0\t0\n0\t1\n", 2, "repeats"),
        ("ec", "0\t0\n1\t0,7\n", 2, "out of range"),
        ("ec", "0\t0\n1\t0,x\n", 2, "transcript id"),
        ("ec", "0 0\n", 1, "fields"),
        ("counts", "0\t5\n9\t1\n", 2, "EC id 9 is not in the EC file"),
        ("counts", "0\tmany\n", 1, "count"),
        ("counts", "%%MatrixMarket matrix coordinate real general\n1 5 1\n1 6 2\n", 3, "outside"),
        ("counts", "%%MatrixMarket matrix coordinate real general\n1 5\n", 2, "size line"),
        # issue 20: a symmetric file stores half a square matrix; counts (samples x ECs) are general
        ("counts", "%%MatrixMarket matrix coordinate real symmetric\n5 5 1\n4 1 2\n", 1,
         "is 'general', got 'symmetric'"),
        ("counts", "%%MatrixMarket matrix array real general\n1 5\n1\n2\n3\n4\n5\n", 1,
         "coordinate matrices are supported"),
    ],
)
def test_kallisto_malformed(tmp_path, which, text, line, message):
    ec, names, counts = kallisto_files(tmp_path, "0\t1\n")
    target = ec if which == "ec" else counts
    write(target, text)
    with error_at(target, line) as error:
        read_kallisto_tcc(ec, names, counts)
    assert message in str(error.value)


# -------------------------------------------------------------- alignments


def test_alignments_table_to_matrix():
    table = pd.DataFrame(
        {"read_id": ["r1", "r1", "r2", "r3", "r3", "r1"],
         "transcript_id": ["B", "A", "B", "C", "C", "B"],
         "weight": [0.5, 0.25, 1.0, 0.1, 0.2, 0.5]}
    )
    reads = alignments_to_matrix(table, transcripts=["A", "B", "C", "D"])
    assert list(reads.read_names) == ["r1", "r2", "r3"]
    np.testing.assert_array_equal(reads.X.toarray(), [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    weighted = alignments_to_matrix(table, weight="weight", transcripts=["A", "B", "C", "D"])
    np.testing.assert_allclose(weighted.X.toarray(), [[0.25, 1.0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.3, 0]])
    default_order = alignments_to_matrix(table)
    assert list(default_order.transcript_names) == ["B", "A", "C"]


def test_alignments_table_errors():
    table = pd.DataFrame({"read_id": ["r1", "r2"], "transcript_id": ["A", "Z"], "w": [1.0, -1.0]})
    with pytest.raises(ValueError, match="row 1: transcript_id is not among transcripts"):
        alignments_to_matrix(table, transcripts=["A", "B"])
    with pytest.raises(ValueError, match="row 1: weight"):
        alignments_to_matrix(table, weight="w")
    with pytest.raises(ValueError, match="no column 'read'"):
        alignments_to_matrix(table, read="read")


SAM_HEADER = "@HD\tVN:1.6\n@SQ\tSN:tA\tLN:1000\n@SQ\tSN:tB\tLN:1500\n@SQ\tSN:tC\tLN:700\n"
SAM_RECORDS = (
    "r1\t0\ttA\t10\t255\t50M\t*\t0\t0\t*\t*\n"
    "r1\t256\ttB\t10\t255\t50M\t*\t0\t0\t*\t*\n"
    "r2\t4\t*\t0\t0\t*\t*\t0\t0\t*\t*\n"
    "p1\t67\ttA\t1\t255\t50M\t=\t100\t150\t*\t*\n"
    "p1\t131\ttA\t100\t255\t50M\t=\t1\t-150\t*\t*\n"
    "p1\t323\ttB\t1\t255\t50M\t=\t100\t150\t*\t*\n"  # mate 1 only on tB: not a pair alignment
    "r3\t2048\ttC\t5\t255\t50M\t*\t0\t0\t*\t*\n"  # supplementary piece only
    "r4\t16\ttC\t5\t255\t50M\t*\t0\t0\t*\t*\n"
)


def test_read_sam_and_bam(tmp_path):
    pysam = pytest.importorskip("pysam")
    sam = write(tmp_path / "reads.sam", SAM_HEADER + SAM_RECORDS)
    reads = read_bam(sam)
    assert list(reads.read_names) == ["r1", "r2", "p1", "r3", "r4"]
    assert list(reads.transcript_names) == ["tA", "tB", "tC"]
    np.testing.assert_array_equal(reads.transcript_lengths, [1000, 1500, 700])
    np.testing.assert_array_equal(
        reads.X.toarray(), [[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]
    )
    bam = tmp_path / "reads.bam"
    pysam.view("-b", "-o", str(bam), str(sam), catch_stdout=False)
    np.testing.assert_array_equal(read_bam(bam).X.toarray(), reads.X.toarray())
    with pytest.warns(UserWarning, match="2 of 5 reads are compatible with no transcript"):
        model = TranscriptQuantifier(lengths=reads.transcript_lengths).fit(reads.X)
    assert model.n_unassigned_ == 2


def test_read_malformed_sam_names_the_line(tmp_path):
    pytest.importorskip("pysam")
    two_records = "".join(SAM_RECORDS.splitlines(keepends=True)[:2])
    sam = write(tmp_path / "bad.sam", SAM_HEADER + two_records + "r9\tzz\ttA\n")
    with error_at(sam, 7):  # 4 header lines, 2 good records, then the bad one
        read_bam(sam)
    truncated = tmp_path / "bad.bam"
    truncated.write_bytes(b"\x1f\x8b\x08\x04" + b"\x00" * 30)
    with pytest.raises(ValueError, match=re.escape(str(truncated))):
        read_bam(truncated)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_sam_bytes_that_are_not_utf8_or_gzip_cut_short(tmp_path):
    pytest.importorskip("pysam")
    records = SAM_RECORDS.splitlines(keepends=True)
    # htslib reads an unknown RNEXT as "no mate" (with a warning): refused, on its line
    damaged = records[0].replace("\t*\t0\t0", "\t*\xff\t0\t0", 1)
    assert damaged != records[0]
    sam = tmp_path / "bad.sam"
    sam.write_bytes((SAM_HEADER + damaged + "".join(records[1:])).encode("latin-1"))
    with error_at(sam, 5) as error:
        read_bam(sam)
    assert "not UTF-8" in str(error.value)
    # a gzip-compressed SAM cut short: a ValueError, and no "Closing failed" from pysam's
    # deallocation of the half-opened file (an unraisable warning, an error here)
    whole = gzip.compress((SAM_HEADER + SAM_RECORDS).encode())
    cut = tmp_path / "cut.sam.gz"
    for size in range(10, len(whole) - 8, 9):
        cut.write_bytes(whole[:size])
        with pytest.raises(ValueError, match=re.escape(str(cut))):
            read_bam(cut)


def test_read_bam_without_pysam_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pysam", None)
    with pytest.raises(ImportError, match=r"skem\[bam\]"):
        read_bam(tmp_path / "any.bam")


# ----------------------------------------------------------------- writers


@pytest.fixture(scope="module")
def fitted():
    X, counts, truth = make_transcript_reads(3000, n_genes=6, random_state=2)
    model = TranscriptQuantifier(
        lengths=truth.lengths, fragment_length=100, transcript_names=truth.transcript_names,
        n_bootstraps=3, random_state=0,
    )
    return model.fit(X, sample_weight=counts)


def test_write_kallisto_abundance(tmp_path, fitted):
    path = tmp_path / "abundance.tsv"
    write_kallisto_abundance(fitted, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "target_id\tlength\teff_length\test_counts\ttpm"
    assert len(lines) == fitted.n_features_in_ + 1
    assert re.fullmatch(r"g\d+\.t\d+\t\d+\t[0-9.e+-]+\t[0-9.e+-]+\t[0-9.e+-]+", lines[1])
    back = read_kallisto_abundance(path)
    expected = fitted.abundance_[["target_id", "length", "eff_length", "est_counts", "tpm"]]
    pd.testing.assert_frame_equal(back, expected, check_dtype=False, check_exact=True)
    lengths = read_lengths(path)
    np.testing.assert_array_equal(lengths.to_numpy(), fitted.abundance_["length"])
    assert list(lengths.index) == list(fitted.abundance_["target_id"])


def test_write_salmon_quant(tmp_path, fitted):
    path = tmp_path / "quant.sf"
    write_salmon_quant(fitted.abundance_, path)
    assert path.read_text().splitlines()[0] == "Name\tLength\tEffectiveLength\tTPM\tNumReads"
    back = read_salmon_quant(path)
    np.testing.assert_array_equal(back["Name"], fitted.abundance_["target_id"])
    np.testing.assert_array_equal(back["NumReads"], fitted.est_counts_)
    np.testing.assert_array_equal(back["TPM"], fitted.tpm_)
    np.testing.assert_array_equal(back["EffectiveLength"], fitted.effective_lengths_)
    pd.testing.assert_series_equal(read_lengths(path), read_lengths(tmp_path / "quant.sf"))


def test_writers_reject_other_tables(tmp_path):
    with pytest.raises(ValueError, match="lacks the columns"):
        write_kallisto_abundance(pd.DataFrame({"target_id": ["a"]}), tmp_path / "x.tsv")
    with pytest.raises(TypeError):
        write_salmon_quant(np.zeros(3), tmp_path / "x.sf")


@pytest.mark.parametrize(
    "counts_text, line, message",
    [
        ("%%MatrixMarket matrix coordinate real general\n1 5 3\n1 1 4\n1 2 5\n", 4,
         "ends after 2 of the 3 entries"),
        ("%%MatrixMarket matrix coordinate real general\n1 5 1\n1 1 4\n1 2 5\n", 4,
         "more than the 1 entries"),
    ],
)
def test_kallisto_tcc_matrix_market_entry_count(tmp_path, counts_text, line, message):
    ec, names, counts = kallisto_files(tmp_path, counts_text)
    with error_at(counts, line) as error:
        read_kallisto_tcc(ec, names, counts)
    assert message in str(error.value)


def test_kallisto_tcc_without_counts_names_the_file(tmp_path):
    ec, names, counts = kallisto_files(
        tmp_path, "%%MatrixMarket matrix coordinate real general\n1 5 0\n")
    with pytest.raises(ValueError, match=re.escape(str(counts)) + ": no counts"):
        read_kallisto_tcc(ec, names, counts)


def test_kallisto_duplicate_transcript_names(tmp_path):
    ec, names, counts = kallisto_files(tmp_path, "0\t3\n")
    names.write_text("ENST1\nENST2\nENST1\n")
    with error_at(names, 3) as error:
        read_kallisto_tcc(ec, names, counts)
    assert "repeats line 1" in str(error.value)


def test_kallisto_transcripts_with_a_tab_or_blank_lines(tmp_path):
    ec, names, counts = kallisto_files(tmp_path, "0\t3\n")
    names.write_text("ENST1\nENST2\t1500\nENST3\n")  # a table is not a list of names
    with error_at(names, 2) as error:
        read_kallisto_tcc(ec, names, counts)
    assert "a tab" in str(error.value)
    names.write_text("ENST1\n\nENST2\n\nENST1\n")  # blank lines are skipped, not renumbered
    with error_at(names, 5) as error:
        read_kallisto_tcc(ec, names, counts)
    assert "repeats line 1" in str(error.value)


def test_empty_alignment_table():
    with pytest.raises(ValueError, match="no rows"):
        alignments_to_matrix(pd.DataFrame({"read_id": [], "transcript_id": []}))


def test_salmon_dir_bootstraps_import_with_pytximport_as_inferential_replicates(tmp_path):
    pytximport = pytest.importorskip("pytximport")
    X, counts, truth = make_transcript_reads(3000, n_genes=4, random_state=0)
    names = [f"tx{i}" for i in range(X.shape[1])]
    fits, paths = [], []
    for sample, seed in enumerate((0, 1)):  # two samples: replicates must land in their own file
        fit = TranscriptQuantifier(lengths=truth.lengths, transcript_names=names, n_bootstraps=4,
                                   random_state=seed).fit(X, sample_weight=counts * (1 + sample))
        write_salmon_dir(fit, tmp_path / f"s{sample}")
        fits.append(fit)
        paths.append(tmp_path / f"s{sample}" / "quant.sf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytximport's own notes (pyarrow missing, ...)
        data = pytximport.tximport(paths, data_type="salmon", inferential_replicates=True,
                                   return_transcript_data=True, output_type="xarray")
    order = [names.index(t) for t in data["transcript_id"].to_numpy()]
    for sample, fit in enumerate(fits):
        # replicates (transcripts x bootstraps) are the fit's bootstrap counts, transposed
        np.testing.assert_allclose(data["inferential_replicates"].to_numpy()[:, :, sample],
                                   fit.bootstrap_est_counts_[:, order].T, rtol=1e-6)
        np.testing.assert_allclose(data["counts"].to_numpy()[:, sample], fit.est_counts_[order],
                                   rtol=1e-6)
        np.testing.assert_allclose(data["abundance"].to_numpy()[:, sample], fit.tpm_[order], rtol=1e-6)
    assert not np.allclose(fits[0].bootstrap_est_counts_, fits[1].bootstrap_est_counts_ / 2)
