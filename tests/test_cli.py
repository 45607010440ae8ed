"""The ``skem`` command, run in process through ``main(argv)``."""

import argparse
import ast
import gzip
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import skem
from skem.cli import main
from skem.cli._common import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from skem.datasets import example_path, make_negbin_mixture

#: The ``skem`` console script, run as a separate process with this interpreter.
SKEM = [sys.executable, "-c", "import sys; from skem.cli import main; sys.exit(main())"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skem {skem.__version__}"


@pytest.mark.parametrize("argv", [
    ["--version"],
    ["-q", "quant", "--eq-classes", str(example_path("transcripts_eq_classes.txt.gz")),
     "--lengths", str(example_path("transcripts_lengths.tsv")), "--fragment-length", "100"],
])
def test_closed_stdout_ends_quietly(tmp_path, argv):
    """``skem ... | head``: the reader closes the pipe before the command has written."""
    if "quant" in argv:
        argv = [*argv, "-o", str(tmp_path / "q")]
    process = subprocess.Popen([*SKEM, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even imported skem
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, err
    assert err == ""  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_warnings_are_one_line(tmp_path):
    X, _ = make_negbin_mixture(200, weights=(0.5, 0.5), means=((5.0, 8.0), (8.0, 5.0)),
                               dispersion=0.5, random_state=0)
    pd.DataFrame(X.astype(int), columns=["a", "b"]).to_csv(tmp_path / "counts.csv", index=False)
    argv = ["nbmix", str(tmp_path / "counts.csv"), "-k", "2", "--max-iter", "1", "--n-init", "1",
            "-o", str(tmp_path / "out"), "-q"]
    result = subprocess.run([*SKEM, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()  # one line, no source line of the warning
    assert line.startswith(
        "skem nbmix: warning: EM did not converge in max_iter=1 iterations."
    )


def test_truncated_gzip_is_one_line_naming_the_file(tmp_path, capsys):
    data = gzip.compress(b"g1,g2\n" + b"1,2\n" * 5000)
    (tmp_path / "counts.csv.gz").write_bytes(data[: len(data) // 2])
    assert main(["nbmix", str(tmp_path / "counts.csv.gz"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"skem nbmix: error: cannot read {tmp_path / 'counts.csv.gz'}: "
        "Compressed file ended before the end-of-stream marker was reached"
    ]


@pytest.mark.parametrize("argv, message", [
    (["nbmix"], "skem nbmix: error: the following arguments are required: counts, -o/--output"),
    (["motif", "x.fa", "-w"], "skem motif: error: argument -w/--width: expected one argument"),
    (["frobnicate"], "skem: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_option_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(message)


def test_quiet_after_the_command(tmp_path, capsys):
    argv = ["quant", "--eq-classes", str(example_path("transcripts_eq_classes.txt.gz")),
            "--lengths", str(example_path("transcripts_lengths.tsv")), "-o", str(tmp_path), "-q"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind, good, bad", [
    (positive_int, {"1": 1, "12": 12}, ["0", "-1", "1.5", "x", ""]),
    (non_negative_int, {"0": 0, "7": 7}, ["-1", "2.0", "nan"]),
    (positive_float, {"0.5": 0.5, "1e3": 1000.0}, ["0", "-2", "inf", "nan", "x"]),
    (non_negative_float, {"0": 0.0, "2.5": 2.5}, ["-0.1", "inf", "nan"]),
    (probability, {"0": 0.0, "0.5": 0.5, "1": 1.0}, ["-1", "2", "1.01", "nan", "x"]),
])
def test_option_types(kind, good, bad):
    for text, value in good.items():
        assert kind(text) == value and type(kind(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace(".", r"\.")):
            kind(text)


def test_option_type_errors_name_the_option(capsys):
    parser = argparse.ArgumentParser(prog="skem motif")
    parser.add_argument("--threshold", type=probability)
    with pytest.raises(SystemExit):
        parser.parse_args(["--threshold", "2"])
    assert "argument --threshold: must be a probability in [0, 1], got '2'" in capsys.readouterr().err


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
        (["nbmix", "{negative}", "-k", "2", "-o", "x"], "is negative"),
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


#: Modules that the parser must not import: they take about a second (scipy.stats through
#: scikit-learn's utils) or belong to a command that is not running.
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "skem.motifs", "skem.negbin", "skem.transcripts",
         "skem.io._bam", "skem.io._motif", "skem.io._quant")

#: Prints, after running ``main`` on each of its arguments, the heavy modules imported.
IMPORTED = """
import sys
from skem.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print([name for name in {heavy!r} if name in sys.modules], file=sys.stderr)
"""


def _heavy_imports(argvs, heavy):
    """The modules among ``heavy`` imported by running ``main`` on each of ``argvs``."""
    code = IMPORTED.format(argvs=argvs, heavy=heavy)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return ast.literal_eval(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["demo", "--help"],
                                  ["nbmix", "--help"], ["quant", "--help"], ["motif", "--help"]])
def test_help_and_version_import_nothing_heavy(argv):
    """``skem``, ``--help``, ``--version`` and ``skem CMD --help`` answer without NumPy,
    pandas, SciPy or scikit-learn (about a second, 1.4 s before, on a quiet machine)."""
    assert _heavy_imports([argv], HEAVY) == []


def test_import_skem_is_light_and_names_load_on_use():
    code = ("import sys, skem; light = 'sklearn' not in sys.modules and 'numpy' not in sys.modules; "
            "from skem import NegBinMixture, MotifMixture; from skem.io import read_meme; "
            "print(light, NegBinMixture.__module__, MotifMixture.__module__, read_meme.__module__, "
            "set(skem.__all__) <= set(dir(skem)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "skem.negbin", "skem.motifs", "skem.io._motif", "True"]
    with pytest.raises(AttributeError, match="module 'skem' has no attribute 'nope'"):
        skem.nope  # noqa: B018


def test_quant_imports_no_motif_code(tmp_path):
    argv = ["-q", "quant", "--eq-classes", str(example_path("transcripts_eq_classes.txt.gz")),
            "--lengths", str(example_path("transcripts_lengths.tsv")), "-o", str(tmp_path / "q")]
    motif_code = ("skem.motifs", "skem.sequence_motifs", "skem._motif_sequences",
                  "skem._sequence_search", "skem._window_search", "skem._pwm", "skem.io._motif")
    assert _heavy_imports([argv], (*motif_code, "skem.negbin", "skem.transcripts")) == [
        "skem.transcripts"
    ]
    assert (tmp_path / "q" / "quant.sf").is_file()


@pytest.mark.parametrize("entry", [["-m", "skem"], ["-c", "import sys; from skem.cli import main; "
                                                          "sys.exit(main())"]])
def test_ctrl_c_while_importing_is_one_line(tmp_path, entry):
    """Ctrl-C while the command imports scikit-learn (its first second): one line, exit code 130.

    A stand-in ``sklearn`` whose import is interrupted makes the moment exact.
    """
    fake = tmp_path / "fake" / "sklearn"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise KeyboardInterrupt\n")
    (tmp_path / "counts.csv").write_text("g1,g2\n1,2\n3,4\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    result = subprocess.run(
        [sys.executable, *entry, "nbmix", str(tmp_path / "counts.csv"), "-o", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert (result.returncode, result.stderr) == (130, "skem: interrupted\n")
