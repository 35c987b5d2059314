"""The results store: append-only JSON Lines of records, each validated against runners.records.schema when it is
written and when it is read."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from runners.records.schema import RecordError, validate
from runners.spec import PairbenchError


def append_record(path: Path, record: dict) -> None:
    """Validate ``record`` and append it as one line, flushed and synced, so a killed run leaves a valid file."""
    validate(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":  # a torn last line (a run killed mid-write): never glue a record onto it
                line = "\n" + line
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _parse(path: Path):
    """Yield (line number, record or None, problem or None) for each non-blank line; never writes."""
    path = Path(path)
    if not path.is_file():
        raise PairbenchError(f"results file {path} does not exist")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"{path} line {number} is not valid JSON ({exc.msg})"
                continue
            if not isinstance(record, dict):
                yield number, None, f"{path} line {number} is not a JSON object"
                continue
            try:
                validate(record)
            except RecordError as exc:
                yield number, None, f"{path} line {number}: {exc}"
                continue
            yield number, record, None


def read_records(path: Path) -> list[dict]:
    """All records of a results file; a line that is not a valid record is an error naming the line and the
    field (the file itself is left as it is: nothing valid in it is lost)."""
    out = []
    for _, record, problem in _parse(path):
        if problem:
            raise PairbenchError(f"{problem}; pass --skip-invalid to report the valid records anyway")
        out.append(record)
    return out


def read_records_lenient(path: Path) -> tuple[list[dict], list[str]]:
    """The valid records, and one sentence per line that was skipped (such as a run killed mid-write)."""
    records, skipped = [], []
    for _, record, problem in _parse(path):
        (skipped.append(problem) if problem else records.append(record))
    return records, skipped


LOCK_NAME = ".pairbench.lock"


@contextlib.contextmanager
def locked(results_dir: Path):
    """Hold ``results_dir`` for one pairbench run: a second run on it (two --resume sweeps, two reports into one
    folder) is refused in one sentence instead of duplicating work or overwriting files. The lock is an advisory
    flock, released by the kernel if the holder dies, so a killed run never leaves the folder locked."""
    import fcntl

    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise PairbenchError(f"results directory {results_dir} is a file, not a directory")
    created = not results_dir.exists()
    results_dir.mkdir(parents=True, exist_ok=True)
    lock = results_dir / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise PairbenchError(
                f"results directory {results_dir} is in use by another pairbench run (pid {holder}); "
                "wait for it to end or choose another --results-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield results_dir
        finally:  # a run that wrote nothing (a refusal, say) leaves nothing behind
            if [p.name for p in results_dir.iterdir()] == [LOCK_NAME]:
                lock.unlink()
                if created:
                    results_dir.rmdir()
    finally:
        os.close(fd)  # closing releases the lock
