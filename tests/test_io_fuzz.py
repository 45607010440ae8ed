"""Fuzz every file reader of skem.io: damaged input raises ValueError naming the file and the line.

Each reader gets one valid file, which hypothesis damages in one way:

- a gzip stream cut short (every text reader accepts gzip by content);
- the plain text cut short: for formats that announce their size (salmon's
  class count, MatrixMarket's entry count, MEME's ``w=``) losing a whole line
  must raise; elsewhere a cut may leave a valid shorter file, but any error
  must still be a ValueError naming file and line;
- a field added to or removed from a line (wrong column count);
- a number replaced by a non-number, a negative or a non-finite value;
- bytes that are not UTF-8 inserted anywhere;
- for FASTA, a gap character in a sequence (the message also names the record).

Each check asserts a ValueError whose message contains the file's path and the
number of the damaged line -- never another exception type and never a silent
success. Known gaps in readers owned elsewhere are strict xfails (so they
turn into failures once fixed) with the reason.
"""

from __future__ import annotations

import gzip
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skem import io as skio

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
WORK = Path(tempfile.mkdtemp(prefix="skem-fuzz-"))

#: Not numbers, or numbers no reader of counts, lengths, ids or probabilities accepts.
BAD_NUMBERS = ["abc", "1,5", "--1", "0x1F", "1e", "NA", "?", "nan", "inf", "-1", "-2.5"]


@dataclass
class Spec:
    """One reader and one valid input for it.

    ``lines`` are the file's lines; ``fields`` maps a line index to
    (separator, indexes of its numeric fields); ``declared`` says that the
    format announces its size, and ``record_starts`` the lines where a cut
    leaves a valid shorter file even so.
    """

    name: str
    read: object
    lines: list
    fields: dict = field(default_factory=dict)
    declared: bool = False
    record_starts: frozenset = frozenset()
    where: str = r"line (\d+)"
    xfail: dict = field(default_factory=dict)  # damage -> reason

    @property
    def text(self):
        return "".join(line + "\n" for line in self.lines)

    def path(self):
        return WORK / f"{self.name}.txt"

    def run(self, data: bytes):
        path = self.path()
        path.write_bytes(data)
        return self.read(path)


def _kallisto_files():
    (WORK / "valid_matrix.ec").write_text("0\t0\n1\t1\n2\t0,1\n3\t1,2\n")
    (WORK / "valid_transcripts.txt").write_text("t1\nt2\nt3\n")
    (WORK / "valid_counts.txt").write_text("0\t5\n1\t3\n2\t7\n3\t1\n")


def _tcc(which):
    def read(path):
        files = {"ec": WORK / "valid_matrix.ec", "transcripts": WORK / "valid_transcripts.txt",
                 "counts": WORK / "valid_counts.txt"}
        files[which] = path
        return skio.read_kallisto_tcc(files["ec"], files["transcripts"], files["counts"])

    return read


_MEME = skio.read_meme
MEME_LINES = [
    "MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
    "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", "",
    "MOTIF m1", "letter-probability matrix: alength= 4 w= 3 nsites= 20",
    " 0.7 0.1 0.1 0.1", " 0.1 0.7 0.1 0.1", " 0.25 0.25 0.25 0.25", "",
    "MOTIF m2", "letter-probability matrix: alength= 4 w= 2 nsites= 10",
    " 0.1 0.1 0.1 0.7", " 0.5 0.5 0 0", "",
]

SAM_LINES = [
    "@HD\tVN:1.6", "@SQ\tSN:tA\tLN:1000", "@SQ\tSN:tB\tLN:1500",
    "r1\t0\ttA\t10\t255\t50M\t*\t0\t0\t*\t*",
    "r1\t256\ttB\t10\t255\t50M\t*\t0\t0\t*\t*",
    "r2\t16\ttB\t5\t255\t50M\t*\t0\t0\t*\t*",
]

SPECS = [
    Spec("fasta", skio.read_fasta,
         [">s1 first", "ACGTAC", "GGTA", "", ">s2", "TTGA", "CC", ">s3", "AAAA"]),
    Spec("meme", _MEME, MEME_LINES,
         fields={i: (" ", (0, 1, 2, 3)) for i in (11, 12, 13, 17, 18)},
         declared=True, record_starts=frozenset({*range(11), 14, 15, 19})),
    Spec("jaspar", skio.read_jaspar,
         [">MA0001.1 one", "A [ 3 0 1 ]", "C [ 0 4 1 ]", "G [ 1 0 1 ]", "T [ 0 0 1 ]",
          "", ">MA0002.1", "A [ 2 2 ]", "C [ 2 2 ]", "G [ 0 0 ]", "T [ 0 0 ]"]),
    Spec("salmon_eq_classes", skio.read_salmon_eq_classes,
         # The one-transcript class comes last: with a field added it reads as a class
         # with weights, and the inconsistency is seen on the line after it.
         ["3", "3", "t1", "t2", "t3", "2\t0\t1\t30", "2\t1\t2\t7", "1\t0\t12"],
         fields={0: ("\t", (0,)), 1: ("\t", (0,)), 2: ("\t", ()), 3: ("\t", ()), 4: ("\t", ()),
                 5: ("\t", (0, 1, 2, 3)), 6: ("\t", (0, 1, 2, 3)), 7: ("\t", (0, 1, 2))},
         declared=True),
    Spec("salmon_quant", skio.read_salmon_quant,
         ["Name\tLength\tEffectiveLength\tTPM\tNumReads",
          "t1\t1000\t850.5\t400000\t20", "t2\t500\t350\t600000\t12.5"],
         fields={0: ("\t", ()), 1: ("\t", (1, 2, 3, 4)), 2: ("\t", (1, 2, 3, 4))}),
    Spec("kallisto_abundance", skio.read_kallisto_abundance,
         ["target_id\tlength\teff_length\test_counts\ttpm",
          "t1\t1000\t850.5\t20\t400000", "t2\t500\t350\t12.5\t600000"],
         fields={0: ("\t", ()), 1: ("\t", (1, 2, 3, 4)), 2: ("\t", (1, 2, 3, 4))}),
    Spec("lengths", skio.read_lengths,
         ["name\tlength", "t1\t1000", "t2\t500", "t3\t2500"],
         fields={0: ("\t", ()), 1: ("\t", (1,)), 2: ("\t", (1,)), 3: ("\t", (1,))}),
    Spec("tcc_ec", _tcc("ec"), ["0\t0", "1\t1", "2\t0,1", "3\t1,2"],
         fields={i: ("\t", (0, 1)) for i in range(4)}),
    Spec("tcc_transcripts", _tcc("transcripts"), ["t1", "t2", "t3"],
         fields={i: ("\t", ()) for i in range(3)}),
    Spec("tcc_counts", _tcc("counts"), ["0\t5", "1\t3", "2\t7", "3\t1"],
         fields={i: ("\t", (0, 1)) for i in range(4)}),
    Spec("tcc_counts_mtx", _tcc("counts"),
         ["%%MatrixMarket matrix coordinate real general", "% written by bustools",
          "2 4 5", "1 1 5", "1 3 7", "2 2 3", "2 3 1", "2 4 1"],
         fields={i: (" ", (0, 1, 2)) for i in range(2, 8)}, declared=True),
    # SAM through pysam/htslib: FLAG may be hexadecimal and TLEN negative, so the
    # numbers damaged are POS, MAPQ and PNEXT.
    Spec("sam", skio.read_bam, SAM_LINES,
         fields={i: ("\t", (3, 4, 7)) for i in range(3, 6)},
         where=r"line (\d+)|record (\d+)|header"),
    Spec("sam_alignments", skio.read_alignments, SAM_LINES,
         fields={i: ("\t", (3, 4, 7)) for i in range(3, 6)},
         where=r"line (\d+)|record (\d+)|header"),
]
_kallisto_files()


def spec_params(damage, only=None):
    for spec in SPECS:
        if only is not None and not only(spec):
            continue
        marks = [pytest.mark.xfail(strict=True, reason=spec.xfail[damage])] if damage in spec.xfail else []
        if spec.name.startswith("sam"):
            marks.append(pytest.mark.skipif(_no_pysam(), reason="read_bam needs pysam"))
        yield pytest.param(spec, id=spec.name, marks=marks)


def _no_pysam():
    try:
        import pysam  # noqa: F401
    except ImportError:
        return True
    return False


def check_error(spec, data, line=None):
    """``spec.read`` on ``data`` raises ValueError naming the file and (when given) ``line``."""
    with pytest.raises(ValueError) as info:
        spec.run(data)
    message = str(info.value)
    assert str(spec.path()) in message, message
    match = re.search(spec.where, message)
    assert match, f"no line named: {message}"
    if line is not None:
        numbers = [int(g) for g in match.groups() if g is not None]
        assert numbers == [line], f"expected line {line}: {message}"
    return message


@pytest.mark.parametrize("spec", list(spec_params(None)))
def test_valid_files_read(spec):
    spec.run(spec.text.encode())


@pytest.mark.parametrize("spec", list(spec_params("gzip")))
@SETTINGS
@given(data=st.data())
def test_truncated_gzip(spec, data):
    compressed = gzip.compress(spec.text.encode(), mtime=0)
    cut = data.draw(st.integers(2, len(compressed) - 1), label="cut")
    check_error(spec, compressed[:cut])


@pytest.mark.parametrize("spec", list(spec_params("truncated")))
@SETTINGS
@given(data=st.data())
def test_truncated_text(spec, data):
    text = spec.text
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    cut_line = text[:cut].count("\n")  # index of the line the cut falls in
    at_start = cut == 0 or text[cut - 1] == "\n"
    lost = spec.lines[cut_line if at_start else cut_line + 1:]
    must_raise = spec.declared and any(s.strip() for s in lost) and cut_line not in spec.record_starts
    left = sum(1 for line in text[:cut].splitlines() if line.strip())
    if must_raise and left <= 1:  # nothing but a first line: the file, not a line, is wrong
        with pytest.raises(ValueError, match=re.escape(str(spec.path()))):
            spec.run(text[:cut].encode())
        return
    if must_raise:
        check_error(spec, text[:cut].encode())
        return
    try:
        spec.run(text[:cut].encode())
    except ValueError as error:  # a valid shorter file, or a ValueError naming a file
        assert str(WORK) in str(error), error


@pytest.mark.parametrize("spec", list(spec_params("columns", lambda s: s.fields or s.name == "jaspar")))
@SETTINGS
@given(data=st.data())
def test_wrong_column_count(spec, data):
    lines = list(spec.lines)
    if spec.name == "jaspar":  # count rows: one value more or fewer than the others
        index = data.draw(st.sampled_from([1, 2, 3, 4, 7, 8, 9, 10]), label="line")
        values = lines[index][3:-2].split()
        values = values + ["1"] if data.draw(st.booleans()) else values[:-1]
        lines[index] = f"{lines[index][0]} [ {' '.join(values)} ]"
    else:
        index = data.draw(st.sampled_from(sorted(spec.fields)), label="line")
        separator, _ = spec.fields[index]
        fields = lines[index].strip().split(separator)
        if len(fields) > 1 and data.draw(st.booleans(), label="remove"):
            fields = fields[:-1]
        else:
            fields = fields + ["1"]
        lines[index] = separator.join(fields)
    check_error(spec, "".join(s + "\n" for s in lines).encode(), line=index + 1)


@pytest.mark.parametrize("spec", list(spec_params(
    "non-numeric", lambda s: any(n for _, n in s.fields.values()) or s.name == "jaspar")))
@SETTINGS
@given(data=st.data())
def test_non_numeric_field(spec, data):
    lines = list(spec.lines)
    bad = data.draw(st.sampled_from(BAD_NUMBERS), label="value")
    if spec.name == "jaspar":
        index = data.draw(st.sampled_from([1, 2, 3, 4, 7, 8, 9, 10]), label="line")
        values = lines[index][3:-2].split()
        values[data.draw(st.integers(0, len(values) - 1))] = bad
        lines[index] = f"{lines[index][0]} [ {' '.join(values)} ]"
    else:
        index = data.draw(st.sampled_from([i for i, (_, n) in spec.fields.items() if n]), label="line")
        separator, numeric = spec.fields[index]
        fields = lines[index].strip().split(separator)
        fields[data.draw(st.sampled_from(numeric), label="field")] = bad
        lines[index] = separator.join(fields)
    check_error(spec, "".join(s + "\n" for s in lines).encode(), line=index + 1)


@pytest.mark.parametrize("spec", list(spec_params("encoding")))
@SETTINGS
@given(data=st.data())
def test_bad_encoding(spec, data):
    raw = spec.text.encode()
    position = data.draw(st.integers(0, len(raw)), label="position")
    junk = data.draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80\x80"]), label="bytes")
    damaged = raw[:position] + junk + raw[position:]
    check_error(spec, damaged, line=raw[:position].count(b"\n") + 1)


FASTA = next(s for s in SPECS if s.name == "fasta")


@SETTINGS
@given(data=st.data())
def test_fasta_gap_names_line_and_record(data):
    sequence_lines = {1: "s1", 2: "s1", 5: "s2", 6: "s2", 8: "s3"}
    index = data.draw(st.sampled_from(sorted(sequence_lines)), label="line")
    lines = list(FASTA.lines)
    at = data.draw(st.integers(0, len(lines[index])), label="column")
    lines[index] = lines[index][:at] + data.draw(st.sampled_from("-.")) + lines[index][at:]
    message = check_error(FASTA, "".join(s + "\n" for s in lines).encode(), line=index + 1)
    assert f"record {sequence_lines[index]!r}" in message


def test_fasta_bom_and_line_ends():
    """A UTF-8 byte-order mark and CR-only or CRLF line ends read like plain LF."""
    expected = skio.read_fasta(io.StringIO(FASTA.text))
    for ending in ("\r", "\r\n"):
        data = b"\xef\xbb\xbf" + FASTA.text.replace("\n", ending).encode()
        assert FASTA.run(data) == expected
        assert FASTA.run(gzip.compress(data)) == expected


def test_bam_truncated_or_corrupt(tmp_path):
    """A BAM cut anywhere (or with a corrupt block) raises ValueError naming the file."""
    pysam = pytest.importorskip("pysam")
    sam = tmp_path / "reads.sam"
    sam.write_text("".join(s + "\n" for s in SAM_LINES))
    bam = tmp_path / "reads.bam"
    pysam.view("-b", "-o", str(bam), str(sam), catch_stdout=False)
    full = bam.read_bytes()
    damaged = tmp_path / "damaged.bam"
    for cut in range(2, len(full) - 28, 7):  # the last 28 bytes are BGZF's end-of-file block
        damaged.write_bytes(full[:cut])
        with pytest.raises(ValueError, match=re.escape(str(damaged))):
            skio.read_bam(damaged)
