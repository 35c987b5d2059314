"""Read a safetensors file into NumPy arrays by its own layout (an 8-byte header length, a JSON header, the data),
so that bfloat16, which NumPy and the safetensors library's NumPy loader cannot hold, is read too. Every entry's
dtype, shape and byte range is checked against the file before its bytes are read: a damaged or crafted file is
one sentence, never a read outside the file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from runners.weights.checkpoint import CheckpointError

MAX_HEADER = 100 << 20  # the safetensors library's own limit on the JSON header

# The file's dtype codes: NumPy's type (bfloat16 read as its 16 bits) and the name said to the user.
DTYPES = {
    "F64": ("<f8", "float64"), "F32": ("<f4", "float32"), "F16": ("<f2", "float16"), "BF16": ("<u2", "bfloat16"),
    "I64": ("<i8", "int64"), "I32": ("<i4", "int32"), "I16": ("<i2", "int16"), "I8": ("i1", "int8"),
    "U64": ("<u8", "uint64"), "U32": ("<u4", "uint32"), "U16": ("<u2", "uint16"), "U8": ("u1", "uint8"),
    "BOOL": ("?", "bool"),
}  # fmt: skip


def _entry(name: str, entry, data_bytes: int) -> tuple[str, tuple[int, ...], int, int]:
    """An entry's dtype code, shape and byte range, each checked against the file."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"its header entry for '{name}' is not an object")
    code, shape, span = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(code, str) or not code.isprintable() or not 0 < len(code) <= 20:
        raise CheckpointError(f"tensor '{name}' has dtype {str(code)[:20]!r}, not a dtype code")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise CheckpointError(f"tensor '{name}' has shape {str(shape)[:60]}, not a list of sizes")
    if not (
        isinstance(span, list) and len(span) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in span)
    ):
        raise CheckpointError(f"tensor '{name}' has data_offsets {str(span)[:60]}, not [begin, end]")
    begin, end = span
    if not 0 <= begin <= end <= data_bytes:
        raise CheckpointError(f"tensor '{name}' spans bytes {begin}-{end} of a data section of {data_bytes}")
    itemsize = np.dtype(DTYPES[code][0]).itemsize if code in DTYPES else None
    if itemsize is not None and math.prod(shape) * itemsize != end - begin:
        raise CheckpointError(
            f"tensor '{name}' of shape {tuple(shape)} needs {math.prod(shape) * itemsize} bytes but spans {end - begin}"
        )
    return code, tuple(shape), begin, end


def read_safetensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Each tensor of the safetensors file ``path`` as (its dtype's name, its array); bfloat16 is returned as its
    raw 16 bits (uint16), and a dtype this reader does not know (float8, say) as its code with no values, for the
    caller to refuse by name. Raises :class:`CheckpointError` for a file that is not a well-formed safetensors
    file."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"it is {size} bytes long, too short for a safetensors header")
        length = int.from_bytes(head, "little")
        if not 0 < length <= min(MAX_HEADER, size - 8):
            raise CheckpointError(f"its first 8 bytes give a header of {length} bytes in a file of {size}")
        try:
            header = json.loads(fh.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"its header is not JSON ({str(exc)[:80]})") from None
        if not isinstance(header, dict):
            raise CheckpointError("its header is not a JSON object")
        header.pop("__metadata__", None)
        start = 8 + length
        out = {}
        for name, entry in header.items():
            code, shape, begin, end = _entry(name, entry, size - start)
            if code not in DTYPES:
                out[name] = (code, np.zeros(0, dtype=np.uint8))
                continue
            fh.seek(start + begin)
            raw = fh.read(end - begin)
            if len(raw) != end - begin:  # the file shrank while it was read
                raise CheckpointError(f"tensor '{name}' could not be read whole")
            out[name] = (DTYPES[code][1], np.frombuffer(raw, dtype=DTYPES[code][0]).reshape(shape))
    return out
