"""The results store: append-only JSON Lines of records, each validated against runners.records.schema when it is
written and when it is read."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from runners.options import input_problem
from runners.records.schema import RecordError, validate
from runners.spec import PairbenchError

TORN_SUFFIX = ".torn"
RECORDS_FILE = "records.jsonl"


def records_path(results_dir) -> Path:
    """The records file of a results directory."""
    return Path(results_dir) / RECORDS_FILE


def _valid_line(text: bytes) -> bool:
    try:
        validate(json.loads(text))
    except (ValueError, RecordError, UnicodeDecodeError):
        return False
    return True


def _set_aside_tail(fd: int, path: Path) -> str | None:
    """With ``fd`` open on ``path`` and locked: if its last line has no newline (a run killed mid-write), complete
    it when it is a whole valid record, else move those bytes to ``path.torn`` (appended, so nothing is ever
    lost) and cut them from ``path``. Returns a sentence saying what was done, or None."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    start = size
    while start > 0:  # back to the byte after the last newline
        chunk = os.pread(fd, min(65536, start), max(0, start - 65536))
        if not chunk:  # the file shrank under us (a writer that takes no lock): leave it as it is
            return None
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start = start - len(chunk) + cut + 1
            break
        start -= len(chunk)
    tail = os.pread(fd, size - start, start)
    if _valid_line(tail):
        os.write(fd, b"\n")
        os.fsync(fd)
        return None
    aside = path.with_name(path.name + TORN_SUFFIX)
    with open(aside, "ab") as fh:
        fh.write(tail + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.ftruncate(fd, start)
    os.fsync(fd)
    return (
        f"{path} ended in a line of {len(tail)} bytes without its newline that is not a valid record (a run killed "
        f"while writing it); it was moved to {aside} and the file now ends at its last whole record"
    )


@contextlib.contextmanager
def _records_file(path: Path):
    """``path`` opened for appending under an exclusive lock on the file itself."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def set_aside_torn_tail(path: Path) -> str | None:
    """Make ``path`` end at a whole record before a run appends to it (see _set_aside_tail); a missing file is
    left missing. Returns the sentence to show the user, or None when there was nothing to do."""
    path = Path(path)
    if not path.is_file():
        return None
    with _records_file(path) as fd:
        return _set_aside_tail(fd, path)


def append_record(path: Path, record: dict, warn=None) -> None:
    """Validate ``record`` and append it as one line in one write, then fsync, so a killed run leaves at most a
    torn last line, which the next append sets aside (never glues to) and reports through ``warn``."""
    validate(record)
    path = Path(path)
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    with _records_file(path) as fd:
        if (said := _set_aside_tail(fd, path)) is not None:
            (warn or _stderr)(said)
        written = os.write(fd, line)
        while written < len(line):  # a short write (a full disk raises instead); O_APPEND keeps it at the end
            written += os.write(fd, line[written:])
        os.fsync(fd)


def _stderr(sentence: str) -> None:
    print(sentence, file=sys.stderr)


def _parse(path: Path):
    """Yield (line number, record or None, problem or None) for each non-blank line; never writes."""
    path = Path(path)
    if problem := input_problem(path, "results file"):  # said before opening it: a FIFO would block the read
        raise PairbenchError(problem)
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
