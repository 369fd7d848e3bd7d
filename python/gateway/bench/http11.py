"""Minimal HTTP/1.1 message framing shared by the bench upstream and the load generator.

Both sides need only what a keep-alive JSON/SSE exchange uses: a head terminated by a blank
line, then a body framed by Content-Length or chunked transfer coding. Keeping the parser
tiny and allocation-light is the point: a framework here would be the bottleneck we measure.
"""

from __future__ import annotations

from typing import NamedTuple

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"


class Head(NamedTuple):
    """A parsed request or status line plus the headers the bench cares about."""

    first_line: bytes
    content_length: int  # -1 when absent
    chunked: bool
    close: bool
    end: int  # offset just past the blank line


def parse_head(buf: bytes | bytearray, start: int = 0) -> Head | None:
    """Parse one message head at ``start``; ``None`` until the blank line has arrived."""
    end = buf.find(HEAD_END, start)
    if end < 0:
        return None
    lines = bytes(buf[start:end]).split(CRLF)
    content_length = -1
    chunked = False
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            content_length = int(value.strip())
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = b"close" in value.lower()
    return Head(lines[0], content_length, chunked, close, end + 4)


def parse_chunked(buf: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body at ``start``: ``(body, end)``, or ``None`` if incomplete.

    Trailers are skipped. Re-scanning from ``start`` on each call is fine for bench-sized
    bodies (a few kB).
    """
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buf.find(CRLF, pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            # Optional trailers, then an empty line.
            while True:
                eol = buf.find(CRLF, pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def encode_chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
