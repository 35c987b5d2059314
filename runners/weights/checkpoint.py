"""Read a ``torch.save`` zip checkpoint into NumPy arrays without torch and without running its code.

The pickle inside is unpickled with an allow-list: containers, the tensor and parameter rebuild
functions and the typed storages. Any other global (the way a malicious pickle runs code) is refused,
as ``torch.load(weights_only=True)`` refuses it. Lets a MindSpore-only machine read NVlabs checkpoints.
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file cannot be read safely."""


# What one checkpoint may make the reader allocate, all its tensors together: elements (a tensor whose strides
# repeat elements can ask for more than its storage holds) and storage-record bytes. Far above any model here
# (aigoms-paper: 143 M float32 parameters, 0.6 GB), far below what would exhaust a machine.
MAX_ELEMENTS = 1 << 30
MAX_BYTES = 8 << 30


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class Bfloat16Array(np.ndarray):
    """A float32 array that was bfloat16 in the file, widened exactly; it says so to whoever reads it."""


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values given as their 16 bits (uint16) as float32: exact, bfloat16 being float32's upper half."""
    return (np.asarray(bits).astype("<u4") << 16).view("<f4").astype(np.float32)


def _bfloat16_to_float32(raw: bytes) -> np.ndarray:
    return bfloat16_to_float32(np.frombuffer(raw, dtype="<u2")).view(Bfloat16Array)


def _ints(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"a tensor's {what} is {value!r:.60}, not a tuple of integers")
    if any(v < 0 for v in value):
        raise CheckpointError(f"a tensor's {what} {tuple(value)} has a negative entry")
    return tuple(value)


def _rebuild_tensor(storage, offset, size, stride, *_unused, limit: int = MAX_ELEMENTS):
    """The tensor ``storage[offset]`` viewed with ``size`` and ``stride`` (in elements), copied out; every
    element it would read is checked to lie inside the storage first, in exact integer arithmetic, and it may
    hold at most ``limit`` elements."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise CheckpointError(f"a tensor's storage offset is {offset!r:.60}, not a non-negative integer")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointError(f"a tensor has {len(size)} sizes but {len(stride)} strides")
    count = math.prod(size)
    if math.prod(n or 1 for n in size) > limit:  # an empty tensor too: NumPy refuses a huge shape
        raise CheckpointError(f"a tensor's shape {size} is more than the {limit} elements this reader will allocate")
    if count == 0:
        return np.zeros(size, dtype=storage.dtype).view(type(storage))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise CheckpointError(
            f"a tensor reads element {last} of a storage of {storage.size} (offset {offset}, size {size}, "
            f"stride {stride}): outside its storage"
        )
    strides = tuple(0 if n == 1 else s * storage.itemsize for n, s in zip(size, stride, strict=True))
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=strides, writeable=False)
    return np.array(view).view(type(storage))  # a Bfloat16Array stays one


def _rebuild_parameter(data, *_unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(fh)
        self._archive = archive
        self._prefix = prefix
        self._order = "<" if byteorder == "little" else ">"
        self._storages: dict[str, np.ndarray] = {}
        self._bytes = 0
        self._elements = 0

    def _rebuild(self, *args):
        """_rebuild_tensor within what is left of the checkpoint's element budget."""
        out = _rebuild_tensor(*args, limit=MAX_ELEMENTS - self._elements)
        self._elements += out.size
        return out

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"refusing to load '{module}.{name}' from the checkpoint: only tensors and plain "
            "containers are read, never code"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], (str, int))):
            raise CheckpointError(f"unexpected persistent id {pid!r} in the checkpoint")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type {storage_type!r} in the checkpoint")
        if key not in self._storages:
            name = f"{self._prefix}data/{key}"
            try:
                declared = self._archive.getinfo(name).file_size
            except KeyError:
                raise CheckpointError(f"the checkpoint lacks storage record data/{key}") from None
            self._bytes += declared
            if self._bytes > MAX_BYTES:
                raise CheckpointError(
                    f"the checkpoint's storage records exceed this reader's limit of {MAX_BYTES} bytes"
                )
            raw = self._archive.read(name)
            itemsize = 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize
            if len(raw) % itemsize:
                raise CheckpointError(f"storage record data/{key} is {len(raw)} bytes, not whole {itemsize}-byte items")
            if storage_type.dtype == "bfloat16":
                arr = _bfloat16_to_float32(raw)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder(self._order))
            self._storages[key] = arr
        return self._storages[key]


def read_torch_checkpoint(path: Path):
    """Return the object saved by ``torch.save`` with every tensor as a NumPy array.

    bfloat16 tensors are widened to float32 (NumPy has no bfloat16), as :class:`Bfloat16Array`. Raises
    :class:`CheckpointError` for a legacy (pre-zip) or damaged file and for any pickled global outside the
    allow-list.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a zip-format torch.save checkpoint (legacy formats are not read)")
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if not pkl:
                raise CheckpointError("it has no data.pkl record, so it is not a torch checkpoint")
            prefix = pkl[0][: -len("data.pkl")]
            names = set(archive.namelist())
            order = "little"
            if prefix + "byteorder" in names:
                order = archive.read(prefix + "byteorder").decode().strip()
            with archive.open(pkl[0]) as fh:
                return _Unpickler(fh, archive, prefix, order).load()
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from None
    except Exception as exc:  # a damaged or crafted pickle, zip or record: whatever it raises, one sentence
        raise CheckpointError(f"{path} is damaged ({type(exc).__name__}: {str(exc)[:200]})") from None
