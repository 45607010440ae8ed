"""The ``skem`` command, run in process through ``main(argv)``."""

import gzip

import numpy as np
import pandas as pd
import pytest

from skem.cli import main
from skem.datasets import example_path, make_negbin_mixture


def test_demo_fits_all_three_estimators(capsys, tmp_path):
    assert main(["-q", "demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "K = 3" in out  # the bundled cells come from three types
    assert "TranscriptQuantifier" in out and "Spearman" in out
    assert "consensus found" in out
    pytest.importorskip("matplotlib")
    assert (tmp_path / "negbin_histogram.png").is_file()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_nbmix_chooses_k_and_writes_tables(tmp_path, capsys):
    X, y = make_negbin_mixture(300, weights=(0.5, 0.5), means=((2.0, 30.0), (30.0, 2.0)),
                               dispersion=0.1, random_state=0)
    table = pd.DataFrame(X.astype(int), columns=["g1", "g2"], index=[f"c{i}" for i in range(300)])
    table.to_csv(tmp_path / "counts.tsv", sep="\t", index_label="cell")
    out_dir = tmp_path / "out"
    assert main(["-q", "nbmix", str(tmp_path / "counts.tsv"), "--k-range", "1-3", "-o", str(out_dir)]) == 0
    assert "K by BIC: 2" in capsys.readouterr().out
    assignments = pd.read_csv(out_dir / "assignments.tsv", sep="\t", index_col="row")
    assert list(assignments.index[:2]) == ["c0", "c1"] and assignments.shape == (300, 3)
    agreement = np.mean(assignments["component"].to_numpy() == y)
    assert max(agreement, 1 - agreement) > 0.97
    parameters = pd.read_csv(out_dir / "parameters.tsv", sep="\t")
    assert set(parameters.columns) == {"component", "weight", "feature", "mean", "dispersion"}
    assert (out_dir / "model_selection.tsv").is_file()


def test_quant_writes_kallisto_abundance(tmp_path):
    out_dir = tmp_path / "quant"
    code = main(["-q", "quant", "--eq-classes", str(example_path("transcripts_eq_classes.txt.gz")),
                 "--lengths", str(example_path("transcripts_lengths.tsv")),
                 "--fragment-length", "100", "-o", str(out_dir)])
    assert code == 0
    abundance = pd.read_csv(out_dir / "abundance.tsv", sep="\t")
    assert list(abundance.columns) == ["target_id", "length", "eff_length", "est_counts", "tpm"]
    assert abundance["est_counts"].sum() == pytest.approx(200000)
    assert abundance["tpm"].sum() == pytest.approx(1e6)


def test_quant_from_an_alignment_table(tmp_path):
    pd.DataFrame({"read_id": ["r1", "r1", "r2", "r3"], "transcript_id": ["t1", "t2", "t1", "t2"]}) \
        .to_csv(tmp_path / "aln.tsv", sep="\t", index=False)
    pd.DataFrame({"Name": ["t1", "t2"], "Length": [500, 800]}).to_csv(
        tmp_path / "lengths.tsv", sep="\t", index=False)
    assert main(["-q", "quant", "--alignments", str(tmp_path / "aln.tsv"),
                 "--lengths", str(tmp_path / "lengths.tsv"), "-o", str(tmp_path / "q")]) == 0
    assert pd.read_csv(tmp_path / "q" / "abundance.tsv", sep="\t")["est_counts"].sum() == pytest.approx(3)


def test_motif_writes_meme_sites_and_logo(tmp_path, capsys):
    from skem.datasets import make_motif_sequences
    from skem.io import read_meme

    sequences, _, _ = make_motif_sequences(60, 60, width=8, random_state=0)
    (tmp_path / "seqs.fa").write_text("".join(f">{n}\n{s}\n" for n, s in sequences.items()))
    out_dir = tmp_path / "motif"
    assert main(["-q", "motif", str(tmp_path / "seqs.fa"), "-w", "8", "-o", str(out_dir)]) == 0
    motifs = read_meme(out_dir / "motifs.meme")
    assert list(motifs) == ["motif1"] and motifs["motif1"].shape == (8, 4)
    sites = pd.read_csv(out_dir / "sites.tsv", sep="\t")
    assert {"sequence", "start", "end", "strand", "site", "probability"} <= set(sites.columns)
    assert "consensus" in capsys.readouterr().out


def test_motif_both_strands_reports_the_strand_of_each_site(tmp_path):
    from skem.datasets import make_motif_sequences

    sequences, planted, _ = make_motif_sequences(
        150, 60, width=8, both_strands=True, random_state=1
    )
    (tmp_path / "seqs.fa").write_text("".join(f">{n}\n{s}\n" for n, s in sequences.items()))
    out_dir = tmp_path / "motif"
    argv = ["-q", "motif", str(tmp_path / "seqs.fa"), "-w", "8", "--both-strands", "-o", str(out_dir)]
    assert main(argv) == 0
    sites = pd.read_csv(out_dir / "sites.tsv", sep="\t")
    assert set(sites["strand"]) == {"+", "-"}  # forward windows; the strand is the model's
    found = sites.merge(planted, on=["sequence", "start"], suffixes=("", "_planted"))
    assert len(found) > 0.7 * len(planted)
    agree = (found["strand"] == found["strand_planted"]).mean()
    assert max(agree, 1 - agree) > 0.95  # up to the orientation the model picked


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nbmix", "missing.csv", "-o", "x"], "no such file"),
        (["nbmix", "{bad}", "-k", "2", "-o", "x"], "not numeric"),
        (["nbmix", "{counts}", "--k-range", "3-1", "-o", "x"], "--k-range"),
        (["nbmix", "{counts}", "--dispersion", "-1", "-o", "x"], "--dispersion"),
        (["nbmix", "{negative}", "-k", "2", "-o", "x"], "Negative values"),
        (["quant", "--eq-classes", "{bad}", "--lengths", "{bad}", "-o", "x"], "line"),
        (["motif", "{fasta}", "-w", "50", "-o", "x"], "shorter than"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "bad.csv").write_text("cell,g1\nc1,abc\n")
    (tmp_path / "counts.csv").write_text("g1,g2\n1,2\n3,4\n")
    (tmp_path / "negative.csv").write_text("g1,g2\n1,-2\n3,4\n")
    with gzip.open(tmp_path / "seqs.fa.gz", "wt") as handle:
        handle.write(">s1\nACGTACGT\n")
    files = {"bad": tmp_path / "bad.csv", "counts": tmp_path / "counts.csv",
             "negative": tmp_path / "negative.csv", "fasta": tmp_path / "seqs.fa.gz"}
    argv = [a.format(**files) for a in argv]
    argv[-1] = str(tmp_path / argv[-1])
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
