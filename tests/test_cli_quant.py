"""``skem quant``: lengths files, option errors, bootstraps, TCC and BAM inputs, run in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skem import TranscriptQuantifier
from skem.cli import main
from skem.datasets import make_transcript_reads
from skem.transcripts import effective_lengths

FRAG = 100


@pytest.fixture(scope="module")
def salmon_like(tmp_path_factory):
    """Unweighted classes in salmon's dump, and a quant.sf whose EffectiveLength differs from Length."""
    directory = tmp_path_factory.mktemp("salmon")
    X, counts, truth = make_transcript_reads(4000, n_genes=6, random_state=3)
    names = [str(n) for n in truth.transcript_names]
    X = sp.csr_matrix(X)
    lines = [str(len(names)), str(X.shape[0]), *names]
    for row in range(X.shape[0]):
        tids = X.indices[X.indptr[row] : X.indptr[row + 1]]
        lines.append("\t".join(map(str, [len(tids), *tids, int(counts[row])])))
    (directory / "eq_classes.txt").write_text("\n".join(lines) + "\n")
    eff = effective_lengths(truth.lengths, 150.0, 20.0)  # the file's own, not L - 100 + 1
    pd.DataFrame({"Name": names, "Length": truth.lengths.astype(int), "EffectiveLength": eff,
                  "TPM": 0.0, "NumReads": 0.0}).to_csv(directory / "quant.sf", sep="\t", index=False)
    return directory, X, counts, truth, names, eff


def quant(argv, capsys=None):
    code = main(["quant", *map(str, argv)])
    return code, (capsys.readouterr().err if capsys is not None else "")


def test_lengths_from_quant_sf_use_its_effective_lengths(tmp_path, salmon_like, capsys):
    directory, X, counts, truth, names, eff = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "-o", tmp_path / "out"], capsys)
    assert code == 0
    assert "using the EffectiveLength column of quant.sf as effective lengths" in err
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    np.testing.assert_allclose(table["eff_length"], eff)
    np.testing.assert_array_equal(table["length"], truth.lengths)
    reference = TranscriptQuantifier(effective_lengths=eff).fit(X, sample_weight=counts)
    np.testing.assert_allclose(table["tpm"], reference.tpm_, rtol=1e-6, atol=1e-3)


def test_fragment_length_overrides_the_files_effective_lengths(tmp_path, salmon_like, capsys):
    directory, *_, truth, names, eff = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "--fragment-length", FRAG, "-o", tmp_path / "out"],
                      capsys)
    assert code == 0 and "not the file's EffectiveLength column" in err
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    np.testing.assert_allclose(table["eff_length"], truth.lengths - FRAG + 1)


def test_fragment_sd_without_mean_is_an_error(tmp_path, salmon_like, capsys):
    directory, *_ = salmon_like
    code, err = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                       directory / "quant.sf", "--fragment-sd", 20, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert "--fragment-sd needs --fragment-length" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before any work


def read_salmon_bootstraps(directory):
    """What tximport's readInfRepFish reads: meta_info.json, then num_targets x num_bootstraps doubles."""
    import gzip
    import json

    assert (directory / "cmd_info.json").exists()
    meta = json.loads((directory / "aux_info" / "meta_info.json").read_text())
    assert meta["samp_type"] == "bootstrap"
    raw = gzip.decompress((directory / "aux_info" / "bootstrap" / "bootstraps.gz").read_bytes())
    boots = np.frombuffer(raw, dtype="<f8")
    assert boots.size == meta["num_targets"] * meta["num_bootstraps"]
    names = gzip.decompress((directory / "aux_info" / "bootstrap" / "names.tsv.gz").read_bytes())
    # R fills column-major: column j is replicate j
    return boots.reshape(meta["num_bootstraps"], meta["num_targets"]), names.decode().split()


def test_bootstraps_are_written_in_salmons_layout(tmp_path, salmon_like, capsys):
    directory, X, counts, truth, names, eff = salmon_like
    code, _ = quant(["--eq-classes", directory / "eq_classes.txt", "--lengths",
                     directory / "quant.sf", "--bootstraps", 3, "-o", tmp_path / "out"], capsys)
    assert code == 0
    replicates, written_names = read_salmon_bootstraps(tmp_path / "out")
    quant_sf = pd.read_csv(tmp_path / "out" / "quant.sf", sep="\t")
    assert written_names == list(quant_sf["Name"]) == names
    assert replicates.shape == (3, len(names))
    # each replicate is a resample of the same number of reads, refitted
    np.testing.assert_allclose(replicates.sum(axis=1), counts.sum(), rtol=1e-9)
    assert not np.allclose(replicates[0], replicates[1])
    np.testing.assert_allclose(replicates.mean(axis=0), quant_sf["NumReads"],
                               atol=5 * np.sqrt(counts.sum()))


def test_bootstraps_need_a_read(tmp_path):
    X = np.array([[1.0, 0.0]])
    with pytest.raises(ValueError, match="at least one read"):
        TranscriptQuantifier(n_bootstraps=2).fit(X, sample_weight=[0.3])


def test_tcc_input(tmp_path, salmon_like, capsys):
    directory, X, counts, truth, names, eff = salmon_like
    ec = tmp_path / "matrix.ec"
    ec.write_text("".join(f"{i}\t{','.join(map(str, X[i].indices))}\n" for i in range(X.shape[0])))
    (tmp_path / "transcripts.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "counts.mtx").write_text(
        "%%MatrixMarket matrix coordinate real general\n"
        f"1 {X.shape[0]} {X.shape[0]}\n" + "".join(f"1 {i + 1} {c:g}\n" for i, c in enumerate(counts)))
    code, _ = quant(["--tcc", ec, tmp_path / "transcripts.txt", tmp_path / "counts.mtx",
                     "--lengths", directory / "quant.sf", "-o", tmp_path / "out"], capsys)
    assert code == 0
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    reference = TranscriptQuantifier(effective_lengths=eff).fit(X, sample_weight=counts)
    np.testing.assert_allclose(table["est_counts"].sum(), counts.sum())
    np.testing.assert_allclose(table["tpm"], reference.tpm_, rtol=1e-4, atol=1e-2)


def test_alignments_from_a_bam(tmp_path, capsys):
    pysam = pytest.importorskip("pysam")
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": "A", "LN": 1000}, {"SN": "B", "LN": 1000}]}
    rng = np.random.default_rng(0)
    with pysam.AlignmentFile(str(tmp_path / "r.bam"), "wb", header=header) as bam:
        for i in range(200):
            start = int(rng.integers(0, 800))
            for ref, score, flag in (("A", 0, 0), ("B", -12, 0x100)):  # B: a decoy, 2 mismatches
                a = pysam.AlignedSegment(bam.header)
                a.query_name, a.query_sequence, a.flag = f"r{i}", "A" * 50, flag
                a.reference_name, a.reference_start, a.cigarstring = ref, start, "50M"
                a.set_tag("AS", score)
                bam.write(a)
    code, err = quant(["--alignments", tmp_path / "r.bam", "--fragment-length", 150,
                       "--fragment-sd", 20, "-o", tmp_path / "out"], capsys)
    assert code == 0 and "200 reads" in err
    table = pd.read_csv(tmp_path / "out" / "abundance.tsv", sep="\t")
    assert table["est_counts"].tolist() == pytest.approx([200, 0], abs=1e-6)
    np.testing.assert_allclose(table["eff_length"], effective_lengths([1000, 1000], 150, 20))
