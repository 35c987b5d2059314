"""What a data path must be before it is opened, and what identifies a data file's content wherever it lies, for a
run's identity."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np

from runners.data.source import InvalidDataError, MissingDataError
from runners.options import input_problem


def checked_path(path, what: str = "data file", directory: bool = False) -> Path:
    """``path`` if it is a regular file (or, where ``directory``, a directory), checked without opening it: a FIFO,
    a device or a socket would block or never end a read. MissingDataError when nothing is there, else
    InvalidDataError naming what is there (a symbolic link loop, a FIFO, a device)."""
    problem = input_problem(path, what, directory)
    if problem is None:
        return Path(path)
    raise (InvalidDataError if os.path.lexists(path) else MissingDataError)(problem)


def npy_problem(path: Path, shape=None, dtype=None) -> str | None:
    """Why the .npy file ``path`` cannot be memory-mapped whole as an array of ``shape`` and ``dtype`` (each None:
    any), found from its header and its size without reading the data; None when it can be."""
    if problem := input_problem(path, "cache file"):
        return problem
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            found, _, found_dtype = read(fh)
            need = fh.tell() + math.prod(found) * found_dtype.itemsize
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError, EOFError) as exc:
        return f"cache file {path} has no readable .npy header ({str(exc)[:80]})"
    if size != need:
        return f"cache file {path} is {size} bytes, but its header describes {need} (cut short or damaged)"
    if shape is not None and tuple(found) != tuple(shape):
        return f"cache file {path} holds an array of shape {tuple(found)}, not {tuple(shape)}"
    if dtype is not None and found_dtype != np.dtype(dtype):
        return f"cache file {path} holds {found_dtype}, not {np.dtype(dtype)}"
    return None


def say_regenerating(problem: str) -> None:
    """Tell the user that a damaged cache entry is being made again (generation takes a while)."""
    print(f"pairbench: {problem}; generating it again", file=sys.stderr)


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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()
