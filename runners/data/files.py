"""What identifies a data file's content wherever it lies, for a run's identity."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_entry(path: Path) -> dict:
    """What identifies a file's content wherever it lies: its name, its size and the SHA-256 of its first and last
    MiB (a whole-file digest of a year of ERA5 would take minutes); of a zarr store, of its top-level metadata files.
    Neither its folder nor its modification time: the same data on another machine is the same data."""
    if not path.is_dir():
        return {"name": path.name, "size": path.stat().st_size, "sha256_ends": ends_digest([path])}
    names = (".zmetadata", ".zgroup", ".zattrs", "zarr.json")
    meta = [path / name for name in names if (path / name).is_file()]
    return {"name": path.name, "size": sum(m.stat().st_size for m in meta), "sha256_ends": ends_digest(meta)}


def ends_digest(paths: list[Path], span: int = 1 << 20) -> str:
    """SHA-256 over the first and last ``span`` bytes of each file (the whole file when it is smaller)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            digest.update(fh.read(min(size, span)))
            if size > span:
                fh.seek(max(span, size - span))
                digest.update(fh.read())
    return digest.hexdigest()
