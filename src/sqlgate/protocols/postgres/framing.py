"""Cutting a PostgreSQL byte stream into messages without decoding them.

The relay's hot path: most messages are forwarded as the original bytes, so framing only
finds where each message starts and ends (type byte, 4-byte length) and enforces the size
limit. Decoding happens only for the few message types a hook asks for.
"""

from __future__ import annotations

import struct

from sqlgate.errors import ProtocolError

_LENGTH = struct.Struct("!I")

Frame = tuple[int, int, int]
"""(type byte, start offset, end offset) of one complete message inside a scanned chunk."""


class FrameBuffer:
    """Accumulates bytes from one direction of a connection and yields complete frames.

    `push(data)` returns the bytes that hold only complete messages, plus the frame offsets
    into them; an incomplete tail is kept for the next push. In the common case (no tail
    pending) the returned bytes are the pushed object itself, not a copy.
    """

    __slots__ = ("_max", "_need", "_tail")

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._tail = bytearray()
        self._need = 0  # bytes the tail must reach before a scan can complete a frame

    @property
    def pending(self) -> int:
        """Bytes held back as part of an incomplete message."""
        return len(self._tail)

    def push(self, data: bytes) -> tuple[bytes, list[Frame]]:
        if self._tail:
            self._tail += data
            if len(self._tail) < self._need:
                return b"", []
            data = bytes(self._tail)
            self._tail.clear()
        frames: list[Frame] = []
        append = frames.append
        unpack = _LENGTH.unpack_from
        size = len(data)
        limit = self._max
        pos = 0
        while size - pos >= 5:
            length = unpack(data, pos + 1)[0]
            if length < 4 or length > limit:
                if length < 4:
                    raise ProtocolError(f"message length {length} is below the minimum of 4")
                raise ProtocolError(f"message of {length} bytes exceeds the limit of {limit} bytes")
            end = pos + 1 + length
            if end > size:
                self._need = end - pos
                break
            append((data[pos], pos, end))
            pos = end
        else:
            self._need = 5
        if pos < size:
            self._tail += data[pos:]
            return data[:pos], frames
        return data, frames
