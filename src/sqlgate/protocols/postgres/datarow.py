"""Fast DataRow value access for rows that must be rewritten (masking).

The typed `DataRow` in messages.py is for clarity; these two functions are the hot-path
versions: one pass over the frame, no intermediate objects.
"""

from __future__ import annotations

import struct

from sqlgate.errors import ProtocolError

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!cI")


def split_data_row(frame: bytes) -> list[bytes | None]:
    """The column values of a complete DataRow frame ('D', length, payload)."""
    unpack = _I32.unpack_from
    count = _I16.unpack_from(frame, 5)[0]
    pos = 7
    end = len(frame)
    values: list[bytes | None] = []
    append = values.append
    try:
        for _ in range(count):
            size = unpack(frame, pos)[0]
            pos += 4
            if size < 0:
                if size != -1:
                    raise ProtocolError(f"negative value length {size} in DataRow")
                append(None)
            else:
                nxt = pos + size
                if nxt > end:
                    raise ProtocolError("DataRow value runs past the message")
                append(frame[pos:nxt])
                pos = nxt
    except struct.error:
        raise ProtocolError("truncated DataRow") from None
    if pos != end:
        raise ProtocolError("DataRow has trailing bytes")
    return values


def build_data_row(values: list[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    append = parts.append
    pack = _I32.pack
    for value in values:
        if value is None:
            append(b"\xff\xff\xff\xff")
        else:
            append(pack(len(value)))
            append(value)
    payload = b"".join(parts)
    return _HEADER.pack(b"D", len(payload) + 4) + payload
