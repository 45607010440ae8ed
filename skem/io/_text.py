"""Numbered lines of text files, for every reader in :mod:`skem.io`.

One reader of lines, so that all file formats treat compression, line ends,
encodings and broken files alike: gzip is detected from the content (not the
name), of a path or of a binary file object; lines end at LF, CRLF or a lone CR; a UTF-8 byte-order mark before
the first line is dropped; bytes that are not UTF-8, and a truncated or
corrupt gzip stream, raise a ValueError naming the file and the line.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib

__all__ = ["TextLines", "check_utf8"]

_GZIP_MAGIC = b"\x1f\x8b"


class TextLines:
    """The lines of a path or an open file, without line ends.

    A path or a binary file may hold gzip (detected from its first bytes,
    also for a stream that cannot seek, such as a pipe); a text file is text.

    Iterating yields the lines; ``number`` is the number of the line last
    yielded, and :meth:`error` builds the ValueError of a problem on it.
    """

    def __init__(self, source):
        self.source = source
        self.name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(
            source, "name", "<stream>"
        )
        self.number = 0

    def error(self, message, number=None):
        """A ValueError naming the file and line ``number`` (default: the current line)."""
        number = self.number if number is None else number
        return ValueError(f"{self.name}, line {number}: {message}")

    def numbered(self):
        """Yield ``(number, line)`` pairs."""
        for line in self:
            yield self.number, line

    def __iter__(self):
        self.number = 0
        if not isinstance(self.source, (str, os.PathLike)):
            yield from self._lines(_decompressed(self.source))
            return
        with open(self.source, "rb") as probe:
            compressed = probe.read(2) == _GZIP_MAGIC
        with (gzip.open if compressed else open)(self.source, "rb") as handle:
            yield from self._lines(handle)

    def _lines(self, handle):
        # Blocks of whole lines are decoded at once, and a block that is not UTF-8 again line
        # by line: undecodable bytes are named on their own line (a TextIOWrapper decodes
        # 8 KiB ahead and blames the first line not yet read), and the lines before them
        # are read first.
        try:
            for block in _blocks_of_lines(handle):
                if isinstance(block, bytes):
                    try:
                        lines = _split_lines(block.decode("utf-8"))
                    except UnicodeDecodeError:
                        lines = (piece.decode("utf-8") for piece in block.splitlines())
                else:
                    lines = _split_lines(block)
                for line in lines:
                    self.number += 1
                    if self.number == 1:
                        line = line.removeprefix("\ufeff")
                    yield line
        except UnicodeDecodeError as exc:
            raise self.error(
                f"byte {exc.start + 1} of the line ({exc.object[exc.start:exc.start + 1]!r}) "
                f"is not UTF-8 text ({exc.reason}).",
                self.number + 1,
            ) from None
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
            raise ValueError(
                f"{self.name}: cannot be read after line {self.number} ({exc})."
            ) from exc


def _decompressed(handle):
    """An open file, gunzipped if it is binary and starts like a gzip stream (as for paths)."""
    head = handle.read(0)
    if isinstance(head, str):  # a text file cannot hold gzip bytes
        return handle
    head = handle.read(len(_GZIP_MAGIC))
    stream = _Prefixed(head, handle)  # the bytes read to look are given back first
    return gzip.GzipFile(fileobj=stream, mode="rb") if head == _GZIP_MAGIC else stream


class _Prefixed(io.RawIOBase):
    """A binary file whose first bytes, already read from ``handle``, are ``head``."""

    def __init__(self, head, handle):
        self.head, self.handle = head, handle

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size=-1):
        if size < 0:  # to the end, as io.RawIOBase.read(-1)
            data, self.head = self.head + self.handle.read(), b""
            return data
        if self.head:
            data = self.head[:size]
            self.head = self.head[len(data):]
            return data
        return self.handle.read(size)


def _blocks_of_lines(handle, size=1 << 16):
    """Contents of ``handle`` (bytes or str) in blocks of about ``size`` that end at a line
    end or the file's end."""
    rest = None
    while True:
        chunk = handle.read(size)
        if not chunk:
            if rest:
                yield rest
            return
        block = chunk if rest is None else rest + chunk
        newline, carriage = ("\n", "\r") if isinstance(block, str) else (b"\n", b"\r")
        # after the last LF, or a CR that is not the block's last character (it may be a CRLF's)
        cut = max(block.rfind(newline), block.rfind(carriage, 0, len(block) - 1)) + 1
        if cut:
            block, rest = block[:cut], block[cut:]
            yield block
        else:
            rest = block


def _split_lines(text):
    """Lines of ``text`` without their ends: LF, CRLF and CR-only, as universal newlines."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ends with a line end
    return lines


def check_utf8(path):
    """Refuse a text file with bytes that are not UTF-8, naming the line (LF-separated lines)."""
    number = 0
    with open(path, "rb") as handle:
        for block in _blocks_of_lines(handle):
            if not block.isascii():  # the common case costs one C-level scan per block
                try:
                    block.decode("utf-8")
                except UnicodeDecodeError as exc:
                    line = number + block.count(b"\n", 0, exc.start) + 1
                    column = exc.start - block.rfind(b"\n", 0, exc.start)
                    raise ValueError(
                        f"{path}, line {line}: byte {column} of the line "
                        f"({block[exc.start:exc.start + 1]!r}) is not UTF-8 text ({exc.reason})."
                    ) from None
            number += block.count(b"\n")
