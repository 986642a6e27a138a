"""Reading one JSON document piece by piece, with positions for error messages.

:class:`JsonReader` walks a document's structure (objects, arrays) and
decodes one value at a time with the standard library's decoder, reading
the file in chunks: memory is bounded by the largest single value (one
entity), not by the file. Every position is a byte offset plus line and
column, so errors can say where, and a reader can be sent back to a value
it passed earlier (:meth:`JsonReader.seek`).
"""

from __future__ import annotations

import codecs
import json
import re
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

from healthsim_models.errors import DocumentError

#: Bytes read from the file at a time.
CHUNK_SIZE = 1 << 20
#: The largest single value (one entity, one header field) a reader accepts, in characters.
MAX_VALUE_CHARS = 64 << 20

_NOT_SPACE = re.compile(r"[^ \t\n\r]")
# A decoding error this close to the end of the buffer may only mean that the
# value continues in the next chunk (a cut literal, number or escape).
_TAIL = 16
_BOM = codecs.BOM_UTF8.decode("utf-8")
_PARTIAL = re.compile(r"[\w.+-]*")
# What may follow a number the decoder stopped at, when a chunk cut it short.
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*")


@dataclass(frozen=True)
class Position:
    """A place in the file: byte offset, and 1-based line and column (in characters)."""

    offset: int
    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column} (byte {self.offset})"


class JsonReader:
    """Reads one JSON document from a seekable binary file, value by value."""

    def __init__(
        self, raw: BinaryIO, label: str, *, chunk_size: int | None = None, max_value_chars: int | None = None
    ) -> None:
        self.label = label
        self.chunk_size = chunk_size or CHUNK_SIZE
        self.max_value_chars = max_value_chars or MAX_VALUE_CHARS
        #: The longest text held at once, in characters (tests check it stays bounded).
        self.peak_buffer = 0
        #: Characters copied into the buffer so far, all rebuilds together
        #: (tests check it grows linearly with the file).
        self.copied = 0
        self._raw = raw
        self._decode = json.JSONDecoder().raw_decode
        self._start = raw.tell()
        self._reset(Position(self._start, 1, 1))

    # -- positions ------------------------------------------------------------

    def _reset(self, at: Position) -> None:
        self._raw.seek(at.offset)
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._base = at  # position of self._buf[0]
        self._read_to = at.offset  # file offset of the next byte to read
        self._eof = False

    def seek(self, at: Position) -> None:
        """Continue reading at ``at``, a position this reader reported earlier."""
        self._reset(at)

    def position(self, index: int | None = None) -> Position:
        """The position of buffer index ``index`` (default: the next unread character)."""
        index = self._pos if index is None else index
        head = self._buf[:index]
        newlines = head.count("\n")
        column = index - head.rfind("\n") if newlines else self._base.column + index
        offset = self._base.offset + len(head.encode("utf-8", "surrogatepass"))
        return Position(offset, self._base.line + newlines, column)

    # -- reading --------------------------------------------------------------

    def _fill(self, at_least: int = 1) -> bool:
        """Drop consumed text and read chunks until at least ``at_least`` more
        characters arrived (at least one chunk); False at the end of the file.

        The buffer is rebuilt once per call, whatever the number of chunks:
        :meth:`value` asks for as much again as it holds, so a value of n
        characters costs O(n) in copies and decoding attempts, not O(n²/chunk).
        """
        if self._eof:
            return False
        if self._pos:
            self._base = self.position()
        rest = len(self._buf) - self._pos
        if rest > self.max_value_chars:
            self.fail(
                f"a single value is larger than {self.max_value_chars} characters; "
                "split the scenario into smaller entities",
                self._base,
            )
        parts = [self._buf[self._pos :]] if rest else []
        added = 0
        while True:
            pending = len(self._text.getstate()[0])
            data = self._raw.read(self.chunk_size)
            try:
                text = self._text.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                offset = self._read_to - pending + exc.start
                raise DocumentError(f"{self.label}: byte {offset} is not valid UTF-8 ({exc.reason})") from None
            if self._read_to == self._start and text.startswith(_BOM):
                text = text[1:]
                self._base = Position(self._base.offset + len(codecs.BOM_UTF8), 1, 1)
            self._read_to += len(data)
            parts.append(text)
            added += len(text)
            if not data:
                self._eof = True
                break
            if added >= at_least or rest + added > self.max_value_chars:
                break
        self._buf = "".join(parts)
        self._pos = 0
        self.copied += len(self._buf)
        self.peak_buffer = max(self.peak_buffer, len(self._buf))
        return not self._eof

    def peek(self) -> str:
        """The next character that is not whitespace, without consuming it; '' at the end."""
        while True:
            found = _NOT_SPACE.search(self._buf, self._pos)
            if found is not None:
                self._pos = found.start()
                return self._buf[self._pos]
            self._pos = len(self._buf)
            if not self._fill() and self._pos >= len(self._buf):
                return ""

    def take(self, char: str, context: str) -> Position:
        """Consume ``char`` (after whitespace) and return where it was."""
        if self.peek() != char:
            self.unexpected(f"'{char}'", context)
        at = self.position()
        self._pos += 1
        return at

    def value(self, context: str) -> Any:
        """Decode the next value whole (an entity, a string, a header field)."""
        if self.peek() == "":
            self.truncated(f"a value was expected for {context}")
        while True:
            try:
                obj, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                incomplete = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._buf) - _TAIL
                if incomplete and not self._eof:
                    self._more()
                    continue
                # At the end of the file, an error on nothing or on a partial
                # literal or number ("88.", "tru") means the file stops early.
                if exc.msg.startswith("Unterminated string") or _PARTIAL.fullmatch(self._buf[exc.pos :].strip()):
                    self.truncated(f"it ends inside {context} ({_at(exc.msg, self.position(exc.pos))})")
                self.fail(f"invalid JSON in {context}: {_lower(exc.msg)}", self.position(exc.pos))
            except RecursionError:
                self.fail(f"{context} is nested too deeply to read", self.position())
            except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
                self.fail(f"invalid JSON in {context}: {exc}", self.position())
            if not self._eof and isinstance(obj, int | float) and _NUMBER_TAIL.fullmatch(self._buf, end):
                # A number at the end of the buffer may go on in the next chunk,
                # also after a cut that left "1." or "1e" (read as 1).
                self._more()
                continue
            self._pos = end
            return obj

    def _more(self) -> None:
        """Read on inside a value: as much again as the buffer holds of it, so
        that each decoding attempt costs no more than all the earlier ones."""
        self._fill(max(self.chunk_size, len(self._buf) - self._pos))

    def members(self, context: str) -> Iterator[tuple[str, Position]]:
        """The keys of the object that starts here, with their positions.

        The caller consumes each member's value before asking for the next key.
        """
        self.take("{", context)
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                self.unexpected("a key in double quotes", context)
            at = self.position()
            key = self.value(f"a key of {context}")
            self.take(":", f"{context}, after the key {_shown(key)}")
            yield key, at
            after = self.peek()
            if after == ",":
                self._pos += 1
            elif after == "}":
                self._pos += 1
                return
            else:
                self.unexpected("',' or '}'", f"{context}, after the value of {_shown(key)}")

    def items(self, context: str) -> Iterator[int]:
        """Indexes of the array that starts here; the caller consumes each item."""
        self.take("[", context)
        if self.peek() == "]":
            self._pos += 1
            return
        index = 0
        while True:
            yield index
            after = self.peek()
            if after == ",":
                self._pos += 1
                index += 1
            elif after == "]":
                self._pos += 1
                return
            else:
                self.unexpected("',' or ']'", f"{context}, after item {index}")

    def end(self) -> None:
        """Require that nothing but whitespace follows."""
        if self.peek() != "":
            self.fail(f"unexpected {self.peek()!r} after the end of the document", self.position())

    # -- errors ---------------------------------------------------------------

    def fail(self, problem: str, at: Position) -> NoReturn:
        raise DocumentError(f"{self.label}, {at}: {problem}")

    def truncated(self, problem: str) -> NoReturn:
        raise DocumentError(f"{self.label} is truncated: {problem}; the file ends at byte {self._read_to}")

    def unexpected(self, expected: str, context: str) -> NoReturn:
        found = self.peek()
        if found == "":
            self.truncated(f"{expected} was expected in {context}")
        self.fail(f"expected {expected} in {context}, found {found!r}", self.position())


_REPR = reprlib.Repr()
_REPR.maxstring = 60


def _shown(key: str) -> str:
    """A key for a message, cut short (a key may be megabytes long)."""
    return _REPR.repr(key)


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _at(message: str, at: Position) -> str:
    """A decoder message ("Unterminated string starting at") with the position appended."""
    message = _lower(message)
    return f"{message} {at}" if message.endswith(" at") else f"{message} at {at}"
