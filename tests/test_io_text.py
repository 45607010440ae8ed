"""The one line reader of skem.io: line ends, byte-order mark, gzip, file objects, broken files."""

from __future__ import annotations

import gzip
import io

import pytest

from skem.io._text import TextLines, _decompressed, check_utf8

CONTENT = b"\xef\xbb\xbfone\r\ntwo\rthree\n\nfive"
LINES = ["one", "two", "three", "", "five"]


@pytest.mark.parametrize("source", ["plain", "gzip", "bytes", "text"])
def test_lines_and_their_numbers_whatever_the_source(tmp_path, source):
    path = tmp_path / "f.txt"
    if source == "plain":
        path.write_bytes(CONTENT)
    elif source == "gzip":
        path.write_bytes(gzip.compress(CONTENT))
    stream = {"bytes": io.BytesIO(CONTENT), "text": io.StringIO(CONTENT.decode("utf-8"))}
    lines = TextLines(stream.get(source, path))
    assert list(lines.numbered()) == list(enumerate(LINES, start=1))
    assert str(lines.error("bad", 3)).endswith(", line 3: bad")


def test_lines_split_across_read_blocks(tmp_path):
    # A CRLF cut between two blocks must stay one line end.
    text = "a" * ((1 << 16) - 1) + "\r\nb\r\n"
    path = tmp_path / "long.txt"
    path.write_bytes(text.encode())
    assert [len(line) for line in TextLines(path)] == [(1 << 16) - 1, 1]


def test_bytes_that_are_not_utf8_are_named_on_their_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"ok\nstill ok\ncaf\xe9\n")
    lines = TextLines(path)
    with pytest.raises(ValueError, match=r"latin\.txt, line 3: byte 4 of the line .* not UTF-8"):
        list(lines)


@pytest.mark.parametrize("content, line, byte", [
    (b"caf\xe9\n", 1, 4),
    (b"\ncaf\xe9\n", 2, 4),  # a first line that is empty
    (b"ok\n\xe9\n", 2, 1),
    (b"ok\n" * 30000 + b"\nxy\xff", 30002, 3),  # in a later block of lines
])
def test_check_utf8_names_the_line_and_byte_of_a_bad_byte(tmp_path, content, line, byte):
    path = tmp_path / "sam.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"sam\.txt, line {line}: byte {byte} of the line"):
        check_utf8(path)
    path.write_bytes(content.replace(b"\xe9", b"e").replace(b"\xff", b"f"))
    check_utf8(path)


def test_truncated_gzip_names_the_file_and_the_last_line_read(tmp_path):
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))[:-40])
    with pytest.raises(ValueError, match=r"cut\.txt\.gz: cannot be read after line \d+"):
        list(TextLines(path))


class _Pipe:
    """A binary stream that can only be read forward (no seek, no peek), like a pipe."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def read(self, size=-1):
        return self._data.read(size)


@pytest.mark.parametrize("stream", [io.BytesIO, _Pipe])
def test_gzip_is_detected_from_the_content_of_a_file_object(stream):
    """Issue 20: gzip bytes in a BytesIO were read as text ("not UTF-8")."""
    from skem.io import read_fasta

    text = b">s1 first\nACGT\n>s2\nGG\n"
    assert read_fasta(stream(gzip.compress(text))) == {"s1": "ACGT", "s2": "GG"}
    assert read_fasta(stream(text)) == {"s1": "ACGT", "s2": "GG"}  # the bytes looked at come back
    assert list(TextLines(stream(gzip.compress(CONTENT)))) == LINES
    assert list(TextLines(stream(b"x"))) == ["x"]  # shorter than the gzip magic


def test_a_truncated_gzip_file_object_is_named():
    data = gzip.compress(b">s1\n" + b"ACGT\n" * 20000)
    with pytest.raises(ValueError, match="cannot be read after line"):
        list(TextLines(io.BytesIO(data[: len(data) // 2])))


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_file_object_read_through_detection_is_a_readable_binary_stream(gzipped):
    # What _decompressed gives back must behave as io's contract says for any reader: the
    # bytes looked at first are not lost, read(-1) reads to the end, read(0) reads nothing,
    # and io's buffered reader accepts it (it checks readable()).
    data = b"ACGT\nTTGA\n" * 50
    for read in (lambda s: s.read(), lambda s: s.read(-1),
                 lambda s: b"".join(iter(lambda: s.read(7), b"")),
                 lambda s: io.BufferedReader(s).read()):
        stream = _decompressed(io.BytesIO(gzip.compress(data) if gzipped else data))
        assert stream.read(0) == b""
        assert read(stream) == data


def test_no_line_is_numbered_before_reading(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(CONTENT)
    lines = TextLines(path)
    assert lines.number == 0
    assert str(lines.error("empty")).endswith(", line 0: empty")
