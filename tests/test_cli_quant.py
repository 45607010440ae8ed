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


@pytest.mark.parametrize("option, value, kind", [
    ("--fragment-length", "0", "a number > 0"),
    ("--fragment-length", "-100", "a number > 0"),
    ("--fragment-length", "nan", "a number > 0"),
    ("--fragment-sd", "0", "a number > 0"),
    ("--prior", "-0.5", "a number >= 0"),
    ("--score-scale", "inf", "a number >= 0"),
    ("--min-likelihood-ratio", "1", "a number in [0, 1)"),
    ("--min-likelihood-ratio", "-0.1", "a number in [0, 1)"),
    ("--min-likelihood-ratio", "nan", "a number in [0, 1)"),
    ("--bootstraps", "-1", "an integer >= 0"),
    ("--bootstraps", "2.5", "an integer >= 0"),
    ("--seed", "-3", "an integer >= 0"),
])
def test_option_values_refused_before_any_work(tmp_path, salmon_like, capsys, option, value, kind):
    directory, *_ = salmon_like
    with pytest.raises(SystemExit) as exit_info:
        quant(["--eq-classes", directory / "eq_classes.txt", "--lengths", directory / "quant.sf",
               option, value, "-o", tmp_path / "out"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip().splitlines() == [
        f"skem quant: error: argument {option}: must be {kind}, got {value!r} (see 'skem quant --help')"
    ]
    assert not (tmp_path / "out").exists()


def test_missing_lengths_file_refused_before_reading_the_classes(tmp_path, salmon_like, capsys):
    directory, *_ = salmon_like
    missing = tmp_path / "no_quant.sf"
    with pytest.raises(SystemExit) as exit_info:
        quant(["--eq-classes", directory / "eq_classes.txt", "--lengths", missing,
               "-o", tmp_path / "out"])
    err = capsys.readouterr().err  # progress is on: nothing was read
    assert exit_info.value.code == 2
    assert err.strip().splitlines() == [
        f"skem quant: error: argument --lengths: no such file: {missing} (see 'skem quant --help')"
    ]


def test_alignment_table_errors_name_the_file_and_line(tmp_path, capsys):
    lengths = tmp_path / "lengths.tsv"
    lengths.write_text("t1\t1000\nt2\t800\n")
    table = tmp_path / "aln.tsv"
    table.write_text("read_id\ttranscript_id\tweight\nr1\tt1\t1\nr2\tt2\t-2\n")
    code, err = quant(["--alignments", table, "--lengths", lengths, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"skem quant: error: {table}: alignment table line 3: weight '-2' is not a finite "
        "non-negative number."
    ]
    table.write_text("read\ttarget\nr1\tt1\n")
    code, err = quant(["--alignments", table, "--lengths", lengths, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"skem quant: error: {table}: the alignment table has no column 'read_id'."
    ]


def test_help_texts_are_plain_for_restructuredtext():
    """The sphinx-argparse reference reads help texts as reStructuredText, where a backslash
    escapes the next character ('\\t' would show as 't')."""
    from skem.cli import _build_parser

    parser = _build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            assert "\\" not in (action.help or ""), (name, action.option_strings, action.help)


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


def test_min_likelihood_ratio_and_the_score_scale_message(tmp_path, capsys):
    pysam = pytest.importorskip("pysam")
    # 100 reads on A (AS 0) that also align to B one point worse; 100 reads on B alone
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": "A", "LN": 1000}, {"SN": "B", "LN": 1000}],
              "PG": [{"ID": "bowtie2", "PN": "bowtie2", "CL": "bowtie2-align-s --mp 6,2 -x ref"}]}
    with pysam.AlignmentFile(str(tmp_path / "r.bam"), "wb", header=header) as bam:
        for i in range(200):
            targets = (("A", 0, 0), ("B", -1, 0x100)) if i < 100 else (("B", 0, 0),)
            for ref, score, flag in targets:
                a = pysam.AlignedSegment(bam.header)
                a.query_name, a.query_sequence, a.flag = f"r{i}", "A" * 50, flag
                a.reference_name, a.reference_start, a.cigarstring = ref, 100 + i, "50M"
                a.set_tag("AS", score)
                bam.write(a)
    common = ["--alignments", tmp_path / "r.bam", "--fragment-length", 150, "--fragment-sd", 20]
    code, err = quant([*common, "-o", tmp_path / "all"], capsys)
    # bowtie2's --mp 6: a mismatch (6 points) is worth log(0.99 / (0.01 / 3)) of log-likelihood
    assert code == 0 and f"score scale {np.log(297) / 6:.3g} per AS point (@PG bowtie2" in err
    shared = pd.read_csv(tmp_path / "all" / "abundance.tsv", sep="\t")["est_counts"]
    assert shared[0] < 99  # B's alignments, exp(-0.95) as likely, take a share
    # dropping alignments below 0.5 of the read's best leaves the first 100 reads to A alone
    code, err = quant([*common, "--min-likelihood-ratio", 0.5, "-o", tmp_path / "best"], capsys)
    best = pd.read_csv(tmp_path / "best" / "abundance.tsv", sep="\t")["est_counts"]
    assert code == 0 and best.tolist() == pytest.approx([100, 100], abs=1e-6)
    code, err = quant([*common, "--score-scale", 0, "-o", tmp_path / "flat"], capsys)
    assert code == 0 and "score scale" not in err


def test_transcript_names_that_quant_sf_cannot_carry_fail_before_the_fit(tmp_path, capsys):
    """A transcript named NA would come back from quant.sf as a missing value: refused at once."""
    eq = tmp_path / "eq_classes.txt"
    eq.write_text("2\n1\ntx1\nNA\n2\t0\t1\t10\n")
    lengths = tmp_path / "lengths.tsv"
    lengths.write_text("tx1\t500\nNA\t600\n")
    code = main(["quant", "--eq-classes", str(eq), "--lengths", str(lengths),
                 "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"skem quant: error: {eq}: transcript 2 ('NA') is empty or reads as a "
                       f"missing value (pandas and R read NA, nan, NULL, ...): rename it to write "
                       f"a table that reads back the same.")
    assert not any("quantifying" in line for line in err)  # before the fit
    assert not (tmp_path / "out").exists()
