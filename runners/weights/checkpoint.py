"""Read a ``torch.save`` zip checkpoint into NumPy arrays without torch and without running its code.

The pickle inside is unpickled with an allow-list: containers, the tensor and parameter rebuild
functions and the typed storages. Any other global (the way a malicious pickle runs code) is refused,
as ``torch.load(weights_only=True)`` refuses it. Lets a MindSpore-only machine read NVlabs checkpoints.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file cannot be read safely."""


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


def _bfloat16_to_float32(raw: bytes) -> np.ndarray:
    halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return halves.view(np.float32)


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    arr = storage
    itemsize = arr.itemsize
    if not size:
        return arr[offset].copy()
    view = np.lib.stride_tricks.as_strided(
        arr[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
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

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"refusing to load '{module}.{name}' from the checkpoint: only tensors and plain "
            "containers are read, never code"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r} in the checkpoint")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type {storage_type!r} in the checkpoint")
        if key not in self._storages:
            try:
                raw = self._archive.read(f"{self._prefix}data/{key}")
            except KeyError:
                raise CheckpointError(f"the checkpoint lacks storage record data/{key}") from None
            if storage_type.dtype == "bfloat16":
                arr = _bfloat16_to_float32(raw)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder(self._order))
            self._storages[key] = arr
        return self._storages[key]


def read_torch_checkpoint(path: Path):
    """Return the object saved by ``torch.save`` with every tensor as a NumPy array.

    bfloat16 tensors are widened to float32 (NumPy has no bfloat16). Raises :class:`CheckpointError`
    for a legacy (pre-zip) or damaged file and for any pickled global outside the allow-list.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a zip-format torch.save checkpoint (legacy formats are not read)")
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if not pkl:
                raise CheckpointError(f"{path} has no data.pkl record, so it is not a torch checkpoint")
            prefix = pkl[0][: -len("data.pkl")]
            names = set(archive.namelist())
            order = "little"
            if prefix + "byteorder" in names:
                order = archive.read(prefix + "byteorder").decode().strip()
            with archive.open(pkl[0]) as fh:
                return _Unpickler(fh, archive, prefix, order).load()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
