"""Tests of skem.sequences: letter codes, one-hot windows, reverse complements, windows and sites."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import skem.motifs
import skem.sequences
from skem.datasets import make_motif_sequences, make_motif_windows
from skem.sequences import (
    decode_sequences,
    encode_sequences,
    one_hot,
    reverse_complement,
    revcomp_permutation,
    sequence_windows,
)

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def test_names_are_re_exported_from_skem_motifs():
    for name in skem.sequences.__all__:
        assert getattr(skem.motifs, name) is getattr(skem.sequences, name)
        assert name in skem.motifs.__all__


# ------------------------------------------------------------------ encoding


def test_one_hot_marks_each_letter_and_leaves_missing_letters_empty():
    codes = np.array([[0, 3, -1], [2, 2, 1]])
    onehot = one_hot(codes, 4)
    assert onehot.shape == (2, 12)
    for row, position in itertools.product(range(2), range(3)):
        block = onehot[row, 4 * position : 4 * position + 4]
        if codes[row, position] < 0:
            assert not block.any()
        else:
            assert block.sum() == 1 and block[codes[row, position]] == 1


def test_encoding_ignores_case_and_decodes_back():
    X, _, _ = make_motif_windows(400, width=8, random_state=3)
    codes = encode_sequences(X)
    mixed = [s.lower() if i % 2 else s for i, s in enumerate(X)]
    np.testing.assert_array_equal(encode_sequences(mixed), codes)
    np.testing.assert_array_equal(decode_sequences(codes), X)


def test_encoding_errors_name_the_letter_and_its_place():
    with pytest.raises(ValueError, match="same length: sequence 1 has length 3"):
        encode_sequences(["ACGT", "ACG"])
    with pytest.raises(ValueError, match="Unknown letter 'Z' in sequence 1 at position 2"):
        encode_sequences(["ACGT", "ACZT"])
    with pytest.raises(ValueError, match="strings"):
        encode_sequences(np.zeros((2, 3), dtype=int))
    assert encode_sequences(["MKX"], alphabet=PROTEIN).tolist() == [[10, 8, -1]]


# ------------------------------------------------------------------ reverse complements


def test_revcomp_permutation_reverse_complements_one_hot_windows():
    windows = ["AACGTN", "GTTNCA", "ACGCGT"]
    onehot = one_hot(encode_sequences(windows), 4)
    rc = one_hot(encode_sequences([reverse_complement(x) for x in windows]), 4)
    perm = revcomp_permutation(6)
    np.testing.assert_array_equal(onehot[:, perm], rc)
    np.testing.assert_array_equal(perm[perm], np.arange(24))  # an involution
    rna = revcomp_permutation(2, alphabet="UGCA")  # any order: U=0 G=1 C=2 A=3
    np.testing.assert_array_equal(rna, [7, 6, 5, 4, 3, 2, 1, 0])


def test_reverse_complement():
    assert reverse_complement("ACGTN") == "NACGT"
    assert reverse_complement("acgRY") == "RYcgt"
    assert reverse_complement("ACGU", alphabet="ACGU") == "ACGU"
    with pytest.raises(ValueError, match="nucleotide"):
        reverse_complement("ACDE", alphabet=PROTEIN)


# ------------------------------------------------------------------ windows


def test_windows_remember_sequence_offset_and_strand():
    sequences = {"a": "ACGTTGCA", "b": "GGN", "c": "TTACG"}
    windows = sequence_windows(sequences, 4, both_strands=True)
    assert "b" not in set(windows.names)  # shorter than the width
    for name, start, strand, window in zip(
        windows.names, windows.starts, windows.strands, windows.windows
    ):
        forward = sequences[name][start : start + 4]
        assert window == (forward if strand == "+" else reverse_complement(forward))
    assert len(windows) == 2 * (5 + 2)
    frame = windows.to_frame()
    assert list(frame.columns) == ["sequence", "start", "end", "strand", "window"]
    assert (frame["end"] - frame["start"] == 4).all()
    unnamed = sequence_windows(["ACGTA", "CC"], 2)
    assert unnamed.names.tolist() == [0, 0, 0, 0, 1]


def test_sites_map_back_and_overlaps_are_resolved():
    windows = sequence_windows({"s": "AAAACCCCAAAA", "t": "CCCCAAAAA"}, 4)
    probability = np.zeros(len(windows))
    probability[[3, 4, 5]] = [0.6, 0.9, 0.7]  # overlapping windows of "s" at 3, 4, 5
    probability[len(windows) - 1] = 0.8  # the last window of "t"
    sites = windows.sites(probability)
    assert sites[["sequence", "start"]].values.tolist() == [["s", 4], ["t", 5]]
    assert sites["site"].tolist() == ["CCCC", "AAAA"]
    assert len(windows.sites(probability, non_overlapping=False)) == 4
    with pytest.raises(ValueError, match="windows"):
        windows.sites(probability[:-1])


def test_sites_report_the_strand_of_the_motif():
    windows = sequence_windows({"s": "AACCGTTT", "t": "GGGGGG"}, 4)
    probability = np.zeros(len(windows))
    probability[[0, 4]] = 0.9  # "AACC" on s, "GTTT" on s
    minus = np.zeros(len(windows))
    minus[4] = 0.8
    sites = windows.sites(probability, minus_strand=minus)
    assert sites[["start", "strand", "site"]].values.tolist() == [
        [0, "+", "AACC"], [4, "-", "AAAC"]
    ]
    both = sequence_windows({"s": "AACCGTTT"}, 4, both_strands=True)
    reverse = np.flatnonzero(both.strands == "-")[0]  # "-" window at 0 reads GGTT
    p = np.zeros(len(both))
    p[reverse] = 0.9
    m = np.zeros(len(both))
    m[reverse] = 0.9
    assert both.sites(p, minus_strand=m)[["strand", "site"]].values.tolist() == [["+", "AACC"]]
    with pytest.raises(ValueError, match="minus_strand"):
        windows.sites(probability, minus_strand=minus[:-1])


def test_simulated_sites_are_in_the_sequences():
    sequences, sites, pwm = make_motif_sequences(
        50, 60, width=9, both_strands=True, site_probability=0.6, random_state=20
    )
    assert len(sequences) == 50 and all(len(s) == 60 for s in sequences.values())
    assert 0 < len(sites) < 50 and set(sites["strand"]) == {"+", "-"}
    for row in sites.itertuples():
        forward = sequences[row.sequence][row.start : row.end]
        assert row.site == (forward if row.strand == "+" else reverse_complement(forward))
    assert pwm.shape == (9, 4)


def test_windowing_rejects_bad_input():
    with pytest.raises(ValueError, match="width"):
        sequence_windows(["ACGT"], 0)
    with pytest.raises(ValueError, match="no windows"):
        sequence_windows(["ACG"], 4)
    with pytest.raises(ValueError, match="single string"):
        sequence_windows("ACGT", 2)
    with pytest.raises(ValueError, match="nucleotide"):
        sequence_windows(["ACDE"], 2, both_strands=True, alphabet=PROTEIN)
