"""Every ``skem`` command on every bad-input fixture: exit code 2, one line on stderr naming the file.

The fixtures in ``tests/data/bad/`` (described in its README) are inputs that
must fail whatever a reader does in detail: a missing, empty, binary or
truncated file, or one with the wrong columns.
"""

from pathlib import Path

import pytest

from skem.cli import main
from skem.datasets import example_path

BAD = Path(__file__).parent / "data" / "bad"
EQ_CLASSES = str(example_path("transcripts_eq_classes.txt.gz"))
LENGTHS = str(example_path("transcripts_lengths.tsv"))

#: What fails for any reader: missing, empty, binary garbage, truncated gzip.
ANY_FILE = ["missing.txt", "empty.txt", "garbage.bin", "truncated.csv.gz"]

#: (command line with {} for the bad file, bad files for it)
CASES = [
    (["nbmix", "{}", "-k", "2"], ANY_FILE + ["counts_ragged.csv"]),
    (["quant", "--eq-classes", "{}", "--lengths", LENGTHS],
     ANY_FILE + ["eq_classes_wrong_columns.txt"]),
    (["quant", "--eq-classes", EQ_CLASSES, "--lengths", "{}", "--fragment-length", "100"],
     ANY_FILE + ["lengths_wrong_columns.tsv"]),
    (["quant", "--alignments", "{}", "--lengths", LENGTHS],
     ANY_FILE + ["alignments_wrong_columns.tsv", "garbage.bam"]),
    (["motif", "{}", "-w", "4"], ANY_FILE + ["fasta_gaps.fa", "fasta_no_header.fa"]),
]


#: Known gaps, for the owners of the command modules (strict: they fail loudly once fixed).
XFAIL = {}


def _params():
    for argv, files in CASES:
        for name in files:
            reason = XFAIL.get((argv[0], name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(argv, name, id=f"{argv[0]}-{argv[1]}-{name}", marks=marks)


def exit_code(argv):
    """``main(argv)``'s exit code, also when argparse exits (an option's type refuses a value)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize("argv, bad", list(_params()))
def test_bad_input_ends_in_one_line_naming_the_file(tmp_path, capsys, argv, bad):
    path = str(BAD / bad)
    argv = [path if a == "{}" else a for a in argv]
    assert exit_code(["-q", *argv, "-o", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"skem {argv[0]}: error: ")
    assert "Traceback" not in captured.err
    assert bad in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


MOTIF_INPUT = [str(example_path("motif_sequences.fa.gz")), "-w", "8"]


@pytest.mark.parametrize("options, named", [
    (["--n-motifs", "0"], "--n-motifs"),
    (["--n-motifs", "-1"], "--n-motifs"),
    (["--n-init", "0"], "--n-init"),
    (["--seed", "-1"], "--seed"),
    (["--threshold", "2"], "--threshold"),
    (["-w", "0"], "-w/--width"),
    (["--minw", "0"], "--minw"),
    (["--maxw", "-4"], "--maxw"),
])
def test_motif_option_values_refused_before_any_work(tmp_path, capsys, options, named):
    code = exit_code(["motif", *MOTIF_INPUT, *options, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err  # progress on: nothing was started
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skem motif: error: argument {named}: must be ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["demo", "nbmix", "quant", "motif"])
def test_output_that_is_a_file_fails_before_any_work(tmp_path, capsys, command):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    inputs = {"demo": [], "nbmix": [str(example_path("negbin_counts.csv.gz"))],
              "quant": ["--eq-classes", EQ_CLASSES, "--lengths", LENGTHS],
              "motif": [str(example_path("motif_sequences.fa.gz")), "-w", "8"]}[command]
    assert main([command, *inputs, "-o", str(taken)]) == 2
    err = capsys.readouterr().err  # progress on: nothing was started
    assert err.strip().splitlines() == [f"skem {command}: error: -o {taken}: exists and is not a folder"]


# ------------------------------------------------------------------ option types, directly


@pytest.mark.parametrize("name, good, bad", [
    ("positive_int", ["1", "7"], ["0", "-1", "1.5", "x", "inf"]),
    ("non_negative_int", ["0", "3"], ["-1", "2.0", ""]),
    ("positive_float", ["1e-300", "2.5"], ["0", "-0.0", "-1e-300", "nan", "inf", "1e400"]),
    ("non_negative_float", ["0", "0.1"], ["-1e-300", "nan", "-inf"]),
    ("probability", ["0", "1", "0.5"], ["1.0000001", "-1e-300", "nan"]),
    ("ratio_below_one", ["0", "0.999999"], ["1", "1.0", "-1e-300", "nan"]),
])
def test_option_types_accept_their_documented_range_only(name, good, bad):
    import argparse

    from skem.cli import _common

    parse = getattr(_common, name)
    for text in good:
        assert parse(text) == float(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {text!r}"):
            parse(text)


def test_progress_lines_show_the_seconds_since_the_start(capsys):
    import re
    import time

    from skem.cli._common import Progress

    progress = Progress()
    time.sleep(0.25)
    progress("step")
    line = capsys.readouterr().err
    seconds = float(re.fullmatch(r"\[\s*([0-9.]+)s\] step\n", line).group(1))
    assert 0.2 <= seconds < 30
    Progress(quiet=True)("nothing")
    assert capsys.readouterr().err == ""


def test_reading_turns_read_errors_into_one_line_naming_the_file():
    import gzip
    import zlib

    from skem.cli._common import UserError, read_error_message, reading

    # an OSError that names its file says so; others are placed on the file being read
    assert read_error_message(OSError(2, "No such file or directory", "x.csv"), ["y.csv"]) == (
        "x.csv: No such file or directory")
    assert read_error_message(OSError("disk on fire"), ["y.csv"]) == "cannot read y.csv: disk on fire"
    assert read_error_message(ValueError("y.csv, line 3: bad"), ["d/y.csv"]) == "y.csv, line 3: bad"
    assert read_error_message(ValueError("bad\nmore"), ["p.tsv", "q.tsv"]) == (
        "cannot read one of p.tsv, q.tsv: bad")
    for error in (EOFError("truncated"), zlib.error("corrupt"), OSError("oops"),
                  UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")):
        with pytest.raises(UserError, match=r"^cannot read c\.csv: "):
            with reading("c.csv"):
                raise error
    for error in (ValueError("not a read error"), BrokenPipeError(32, "Broken pipe")):
        with pytest.raises(type(error)):
            with reading("c.csv"):
                raise error
    with pytest.raises(UserError, match=r"c\.csv\.gz"):
        with reading("c.csv.gz"):
            gzip.decompress(b"\x1f\x8b\x08\x00broken")
