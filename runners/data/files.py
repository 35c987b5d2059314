"""What identifies a data file's content wherever it lies, for a run's identity."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_entry(path: Path) -> dict:
    """What identifies a file's content wherever it lies: its name, its size and the SHA-256 of its first and last
    MiB (a whole-file digest of a year of ERA5 would take minutes). A zarr store (a folder): its total size, and a
    SHA-256 over the list of its files with their sizes, its metadata files, and the first and last chunk of each
    folder of chunks. Neither its folder nor its modification time: the same data on another machine is the same
    data."""
    if not path.is_dir():
        return {"name": path.name, "size": path.stat().st_size, "sha256_ends": ends_digest([path])}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "\n".join(f"{p.relative_to(path).as_posix()} {p.stat().st_size}" for p in files)
    by_folder: dict[Path, list[Path]] = {}
    for p in files:
        if not p.name.startswith("."):  # chunks (metadata files are sampled below)
            by_folder.setdefault(p.parent, []).append(p)
    sampled = sorted({p for group in by_folder.values() for p in (group[0], group[-1])} | {
        p for p in files if p.name in (".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json")
    })  # fmt: skip
    digest = hashlib.sha256(listing.encode())
    digest.update(ends_digest(sampled).encode())
    return {"name": path.name, "size": sum(p.stat().st_size for p in files), "sha256_ends": digest.hexdigest()}


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
