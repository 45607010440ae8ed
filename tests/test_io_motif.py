"""Tests of the sequence and motif file formats: FASTA in, MEME minimal and JASPAR out and back."""

from __future__ import annotations

import gzip
import io
import re

import numpy as np
import pandas as pd
import pytest

from skem import MotifMixture
from skem.datasets import make_motif_windows
from skem.io import read_fasta, read_jaspar, read_meme, write_jaspar, write_meme

# ------------------------------------------------------------------ FASTA


def _write(path, text, compress=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


FASTA = """>seq1 a description
ACGTACGTAC
gtacg

>seq2
NNACGT\r
;an old-style comment
  ttAA  
>seq3
A
"""


@pytest.mark.parametrize("compress", [False, True])
def test_fasta_wrapped_lowercase_blank_lines_and_gzip(tmp_path, compress):
    # The compressed file has no .gz suffix: compression is detected from the content.
    path = _write(tmp_path / "seqs.fa", FASTA, compress=compress)
    sequences = read_fasta(path)
    assert sequences == {"seq1": "ACGTACGTACGTACG", "seq2": "NNACGTTTAA", "seq3": "A"}
    assert list(sequences) == ["seq1", "seq2", "seq3"]
    assert read_fasta(str(path), uppercase=False)["seq1"] == "ACGTACGTACgtacg"


def test_fasta_from_an_open_file(tmp_path):
    path = _write(tmp_path / "seqs.fa", FASTA)
    with open(path) as handle:
        assert read_fasta(handle)["seq3"] == "A"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("ACGT\n>s\nACGT\n", 1, "before the first '>' header"),
        (">s\nACGT\n>\nAC\n", 3, "without a sequence name"),
        (">s\nACGT\n>s\nAC\n", 3, "appears twice"),
        (">s\nAC1T\n", 2, "unexpected character '1'"),
        (">s\nACGT\n>t\n\n>u\nAA\n", 3, "'t' has no sequence"),
        (">s\nACGT\n>t\n", 3, "'t' has no sequence"),
        (b">s\nAC\xffGT\n", 2, "not UTF-8"),
    ],
)
def test_malformed_fasta_names_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "bad.fa", text)
    with pytest.raises(ValueError, match=rf"bad\.fa, line {line}: .*{message}"):
        read_fasta(path)


def test_empty_or_truncated_fasta(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.fa: no FASTA records"):
        read_fasta(_write(tmp_path / "empty.fa", "\n\n"))
    truncated = gzip.compress((">s\n" + "ACGT" * 5000 + "\n").encode())[:-40]
    with pytest.raises(ValueError, match=r"cut\.fa\.gz: cannot be read"):
        read_fasta(_write(tmp_path / "cut.fa.gz", truncated))


# ------------------------------------------------------------------ MEME


def _random_pwms(seed, n=2, w=6, A=4):
    return np.random.default_rng(seed).dirichlet(np.full(A, 0.5), size=(n, w))


@pytest.mark.parametrize("suffix", [".meme", ".meme.gz"])
def test_meme_round_trip(tmp_path, suffix):
    pwms = _random_pwms(0)
    background = np.array([0.3, 0.2, 0.2, 0.3])
    path = tmp_path / f"motifs{suffix}"
    write_meme(path, {"first": pwms[0], "second": pwms[1]}, background=background,
               nsites={"first": 17})
    motifs = read_meme(path)
    assert list(motifs) == ["first", "second"]
    for matrix, frame in zip(pwms, motifs.values()):
        assert list(frame.columns) == list("ACGT")
        np.testing.assert_allclose(frame.to_numpy(), matrix, atol=1e-6)
    assert motifs["first"].attrs["nsites"] == 17
    assert "nsites" not in motifs["second"].attrs
    assert motifs["first"].attrs["background"] == pytest.approx(dict(zip("ACGT", background)))
    assert motifs["first"].attrs["strands"] == "+ -"


def test_meme_file_has_the_minimal_format_skeleton(tmp_path):
    path = tmp_path / "m.meme"
    write_meme(path, _random_pwms(1, n=1, w=3))
    lines = path.read_text().splitlines()
    assert lines[0] == "MEME version 4"
    assert "ALPHABET= ACGT" in lines and "strands: + -" in lines
    assert "Background letter frequencies" in lines
    assert "MOTIF motif1" in lines
    header = lines.index("MOTIF motif1") + 1
    assert lines[header] == "letter-probability matrix: alength= 4 w= 3"
    rows = [np.array(line.split(), float) for line in lines[header + 1 : header + 4]]
    np.testing.assert_allclose([row.sum() for row in rows], 1.0, atol=1e-5)


def test_meme_of_a_fitted_model_round_trips(tmp_path):
    X, _, _ = make_motif_windows(1000, width=8, random_state=2)
    model = MotifMixture(random_state=0).fit(X)
    path = tmp_path / "fitted.meme"
    write_meme(path, {"motif": model.pwm()}, background=model.background_,
               nsites=round(model.weights_[1] * len(X)))
    frame = read_meme(path)["motif"]
    np.testing.assert_allclose(frame.to_numpy(), model.pwms_[1], atol=1e-6)
    np.testing.assert_allclose(list(frame.attrs["background"].values()), model.background_,
                               atol=1e-6)


def test_meme_protein_without_strands(tmp_path):
    protein = "ACDEFGHIKLMNPQRSTVWY"
    pwms = _random_pwms(3, n=1, w=4, A=20)
    path = tmp_path / "protein.meme"
    write_meme(path, pwms, alphabet=protein, strands=None)
    assert "strands" not in path.read_text()
    frame = read_meme(path)["motif1"]
    assert list(frame.columns) == list(protein)
    np.testing.assert_allclose(frame.to_numpy(), pwms[0], atol=1e-6)


GOOD_MEME = """MEME version 4

ALPHABET= ACGT

Background letter frequencies
A 0.25 C 0.25 G 0.25 T 0.25

MOTIF m1 alt
letter-probability matrix: alength= 4 w= 2 nsites= 5 E= 1e-3
 0.1 0.2 0.3 0.4
 0.25 0.25 0.25 0.25
"""


def test_meme_reader_accepts_alt_names_and_e_values(tmp_path):
    frame = read_meme(_write(tmp_path / "good.meme", GOOD_MEME))["m1"]
    assert frame.attrs["alt_name"] == "alt" and frame.attrs["E"] == 1e-3
    assert frame.shape == (2, 4)


@pytest.mark.parametrize(
    "old, new, line, message",
    [
        (" 0.25 0.25 0.25 0.25\n", "", 9, "announces w= 2 rows; the file ends after 1 of them"),
        (" 0.1 0.2 0.3 0.4", " 0.1 0.2 nan 0.4", 10, "not probabilities"),
        (" 0.1 0.2 0.3 0.4", " 0.1 nan nan 0.4", 10, "not probabilities"),
        ("A 0.25 C", "A nan C", 6, "background frequencies are not probabilities"),
        ("letter-probability matrix: alength= 4 w= 2 nsites= 5 E= 1e-3\n 0.1 0.2 0.3 0.4\n"
         " 0.25 0.25 0.25 0.25\n", "", 8, "'m1' has no letter-probability matrix .the file ends"),
        ("MOTIF m1 alt\n", "MOTIF m0\nMOTIF m1 alt\n", 8, "'m0' has no letter-probability "
         "matrix .the next MOTIF line is line 9"),
        (" 0.1 0.2 0.3 0.4", " 0.1 0.2 0.3", 10, "has 3 values, expected 4"),
        (" 0.1 0.2 0.3 0.4", " 0.1 0.2 x 0.4", 10, "not numbers"),
        (" 0.1 0.2 0.3 0.4", " 0.9 0.9 0.3 0.4", 10, "not probabilities"),
        ("alength= 4", "alength= 5", 9, "does not match the alphabet"),
        ("ALPHABET= ACGT\n", "", 8, "no 'ALPHABET=' line"),
        ("w= 2", "w= two", 9, "needs 'w= <int>'"),
        ("MOTIF m1 alt", "MOTIF", 8, "without a name"),
        # issue 20: a row beyond w= was dropped, giving a 2-row motif from three rows
        (" 0.25 0.25 0.25 0.25\n", " 0.25 0.25 0.25 0.25\n 0.4 0.3 0.2 0.1\n", 12,
         r"'m1' has more matrix rows than the w= 2 of its header \(line 9\)"),
        (" 0.25 0.25 0.25 0.25\n", " 0.25 0.25 0.25 0.25\n\n 0.4 0.3 0.2 0.1\n", 13,
         "more matrix rows than the w= 2"),
        ("w= 2", "w= 0", 9, "w= 0; a motif has at least one position"),
        # MEME's rows sum to 1 within rounding (0.01), probabilities and background in [0, 1]
        (" 0.1 0.2 0.3 0.4", " 0.1 0.2 0.3 0.415", 10, "not probabilities"),
        (" 0.1 0.2 0.3 0.4", " 0.1 0.2 0.3 0.385", 10, "not probabilities"),
        ("A 0.25 C", "A 1.01 C", 6, "background frequencies are not probabilities"),
        ("A 0.25 C", "A -0.01 C", 6, "background frequencies are not probabilities"),
        ("ALPHABET= ACGT", "ALPHABET DNA-ISH", 3, "unknown alphabet 'DNA-ISH'"),
        # a MEME file whose motifs are all missing is named as such, not as another format
        (GOOD_MEME[GOOD_MEME.index("MOTIF"):], "", None, "no motifs found"),
    ],
)
def test_malformed_meme_names_file_and_line(tmp_path, old, new, line, message):
    path = _write(tmp_path / "bad.meme", GOOD_MEME.replace(old, new))
    where = rf"bad\.meme, line {line}: " if line else r"bad\.meme: .*"
    with pytest.raises(ValueError, match=where + f".*{message}"):
        read_meme(path)


@pytest.mark.parametrize("old, new", [
    (" 0.1 0.2 0.3 0.4", " 0.1 0.2 0.3 0.409"),  # rounding within 0.01
    (" 0.1 0.2 0.3 0.4", " 0.1 0.2 0.3 0.391"),
    (" 0.1 0.2 0.3 0.4", " 1 0 0 0"),  # the bounds of a probability
    ("A 0.25 C 0.25 G 0.25 T 0.25", "A 1 C 0 G 0 T 0"),
    ("ALPHABET= ACGT", "ALPHABET DNA"),  # a built-in alphabet named on one line
    ("ALPHABET= ACGT", 'ALPHABET "DNA"\nA ~ T\nC ~ G\nEND ALPHABET'),
])
def test_meme_values_at_the_edges_of_the_format_are_read(tmp_path, old, new):
    frame = read_meme(_write(tmp_path / "edge.meme", GOOD_MEME.replace(old, new)))["m1"]
    assert list(frame.columns) == list("ACGT") and frame.shape == (2, 4)
    expected = [float(v) for v in (new if new.startswith(" ") else " 0.1 0.2 0.3 0.4").split()]
    np.testing.assert_array_equal(frame.iloc[0], expected)


def test_not_a_meme_file(tmp_path):
    with pytest.raises(ValueError, match=r"x\.meme: not a MEME motif file"):
        read_meme(_write(tmp_path / "x.meme", ">seq\nACGT\n"))


def test_writers_reject_bad_matrices(tmp_path):
    with pytest.raises(ValueError, match=r"\(w, 4\)"):
        write_meme(tmp_path / "a.meme", {"m": np.ones((3, 5))})
    with pytest.raises(ValueError, match="non-negative"):
        write_jaspar(tmp_path / "a.jaspar", {"m": -np.ones((3, 4))})
    with pytest.raises(ValueError, match="one word"):
        write_meme(tmp_path / "a.meme", {"two words": np.ones((3, 4))})


# ------------------------------------------------------------------ JASPAR


def test_jaspar_round_trip_of_counts_and_of_probabilities(tmp_path):
    counts = np.random.default_rng(4).integers(0, 30, size=(7, 4)).astype(float)
    path = tmp_path / "counts.jaspar"
    write_jaspar(path, {"MA0001.1": counts, "MA0002.1": counts[::-1]},
                 names={"MA0001.1": "FOO"})
    motifs = read_jaspar(path)
    assert list(motifs) == ["MA0001.1", "MA0002.1"]
    np.testing.assert_allclose(motifs["MA0001.1"].to_numpy(), counts)
    np.testing.assert_allclose(motifs["MA0002.1"].to_numpy(), counts[::-1])
    assert motifs["MA0001.1"].attrs["name"] == "FOO"
    assert list(motifs["MA0001.1"].columns) == list("ACGT")

    probabilities = _random_pwms(5, n=1)[0]
    write_jaspar(tmp_path / "p.jaspar", {"m": probabilities}, nsites=200)
    frame = read_jaspar(tmp_path / "p.jaspar")["m"]
    np.testing.assert_allclose(frame.sum(axis=1), 200, atol=0.02)
    np.testing.assert_allclose(frame.to_numpy() / 200, probabilities, atol=1e-4)


def test_jaspar_reads_the_canonical_layout(tmp_path):
    text = (">MA0004.1 Arnt\n"
            "A  [ 4  19   0   0   0   0 ]\n"
            "C  [16   0  20   0   0   0 ]\n"
            "G  [ 0   1   0  20   0  20 ]\n"
            "T  [ 0   0   0   0  20   0 ]\n")
    frame = read_jaspar(_write(tmp_path / "arnt.jaspar", text))["MA0004.1"]
    assert frame.attrs["name"] == "Arnt" and frame.shape == (6, 4)
    assert frame.loc[1, "A"] == 19 and (frame.sum(axis=1) == 20).all()


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("A [ 1 2 ]\n", 1, "before the first '>' header"),
        (">m\nA [ 1 2 ]\nC [ 1 2 3 ]\n", 3, "row 'C' of matrix 'm' has 3 counts, other rows 2"),
        # the row that differs from most rows is named, also when it comes first
        (">m\nA [ 1 2 3 ]\nC [ 1 2 ]\nG [ 1 2 ]\nT [ 1 2 ]\n", 2, "row 'A' .* has 3 counts, other rows 2"),
        (">m\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 2 ]\nT [ 1 ]\n\n>n\nA [ 1 ]\n", 5, "row 'T'"),
        (">m\nA [ 1 2 ]\nA [ 1 2 ]\n", 3, "appears twice"),
        (">m\nA [ 1 x ]\n", 2, "not numbers"),
        (">m\nA [ 1 -2 ]\n", 2, "non-negative"),
        (">m\nA 1 2\n", 2, "expected a row like"),
        (">m\n>n\nA [ 1 ]\n", 1, "'m' has no rows"),
        (">m\nA [ 1 ]\nC [ 1 ]\nG [ 1 ]\nT [ 1 ]\n>m\nA [ 1 ]\n", 6, "appears twice"),
        # issue 20: a matrix without a row per letter is not a 3-letter motif
        (">m\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 2 ]\n", 1, r"matrix 'm' has no row for 'T' \(alphabet 'ACGT'"),
        (">m\nA [ 1 ]\nC [ 1 ]\nG [ 1 ]\nN [ 1 ]\nT [ 1 ]\n", 5, "letter 'N' of matrix 'm' is not in the alphabet"),
    ],
)
def test_malformed_jaspar_names_file_and_line(tmp_path, text, line, message):
    with pytest.raises(ValueError, match=rf"bad\.jaspar, line {line}: .*{message}"):
        read_jaspar(_write(tmp_path / "bad.jaspar", text))


def test_empty_jaspar(tmp_path):
    with pytest.raises(ValueError, match="no JASPAR matrices"):
        read_jaspar(_write(tmp_path / "empty.jaspar", "\n"))


def test_fasta_windows_fit_and_sites_end_to_end(tmp_path):
    """FASTA file -> windows -> fit -> sites, with the planted sites recovered."""
    from skem.datasets import make_motif_sequences
    from skem.motifs import sequence_windows

    sequences, sites, pwm = make_motif_sequences(150, 80, width=8, random_state=6)
    text = "".join(f">{name}\n{seq[:50].lower()}\n{seq[50:]}\n\n" for name, seq in sequences.items())
    path = _write(tmp_path / "planted.fa.gz", text, compress=True)
    windows = sequence_windows(read_fasta(path), 8)
    model = MotifMixture(random_state=0).fit(windows.windows)
    found = windows.sites(model.predict_proba(windows.windows)[:, 1])
    planted = set(zip(sites["sequence"], sites["start"]))
    assert len(planted & set(zip(found["sequence"], found["start"]))) > 0.7 * len(planted)
    assert isinstance(found, pd.DataFrame)


# ------------------------------------------------ MEME files other software reads


def _fitted_sequence_model():
    from skem import SequenceMotifMixture
    from skem.datasets import make_motif_sequences

    sequences, _, pwm = make_motif_sequences(80, 60, width=8, both_strands=True, random_state=0)
    return SequenceMotifMixture(width=8, revcomp=True, random_state=0).fit(sequences), pwm


def test_biopython_parses_our_meme_output(tmp_path):
    motifs_module = pytest.importorskip("Bio.motifs")
    model, _ = _fitted_sequence_model()
    path = tmp_path / "m.meme"
    write_meme(path, {"motif1": model.pwms_[1]}, background=model.background_,
               nsites={"motif1": model.nsites_[0]}, evalues={"motif1": model.evalues_[0]})
    with open(path) as handle:
        parsed = motifs_module.parse(handle, "minimal")
    (motif,) = parsed
    assert motif.name == "motif1"
    assert motif.num_occurrences == round(model.nsites_[0])
    # Biopython rounds the probabilities times nsites to whole counts.
    counts = np.array([[motif.counts[letter][i] for letter in "ACGT"] for i in range(8)])
    frequencies = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(frequencies, model.pwms_[1], atol=1.0 / motif.num_occurrences)
    text = path.read_text()
    assert re.search(r"nsites= \d+ E= \d\.\de[+-]\d+", text)


def test_write_meme_takes_the_letters_of_a_dataframe():
    frame = pd.DataFrame([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]], columns=list("ACGU"))
    out = io.StringIO()
    write_meme(out, {"rna": frame}, nsites=12.6)
    text = out.getvalue()
    assert "ALPHABET= ACGU" in text and "nsites= 13" in text
    # Columns in another order are reordered to the alphabet's.
    shuffled = frame[list("UGCA")]
    again = io.StringIO()
    write_meme(again, {"rna": shuffled}, alphabet="ACGU", nsites=12.6)
    assert again.getvalue() == text
    with pytest.raises(ValueError, match="pass alphabet='ACGU'"):
        write_meme(io.StringIO(), {"rna": frame}, alphabet="ACGT")


MEME5 = """MEME version 5

ALPHABET "DNA" DNA-LIKE
A "Adenine" CC0000 ~ T "Thymine" 008000
C "Cytosine" 0000CC ~ G "Guanine" FFB300
N "Any base" = ACGT
X = ACGT
END ALPHABET

strands: + -

Background letter frequencies
A 0.3 C 0.2 G 0.2 T 0.3

MOTIF m1 ALT
letter-probability matrix: alength= 4 w= 2 nsites= 20 E= 3.1e-12
0.1 0.2 0.3 0.4
0.4 0.3 0.2 0.1
"""


def test_read_meme_reads_a_meme5_alphabet_block():
    motifs = read_meme(io.StringIO(MEME5))
    frame = motifs["m1"]
    assert list(frame.columns) == list("ACGT")
    assert frame.attrs["nsites"] == 20 and frame.attrs["E"] == 3.1e-12
    np.testing.assert_allclose(frame.iloc[0], [0.1, 0.2, 0.3, 0.4])
    block = MEME5.replace("END ALPHABET\n", "")
    with pytest.raises(ValueError, match="END ALPHABET"):
        read_meme(io.StringIO(block))
