"""The results store: append-only JSON Lines of records, each validated against runners.records.schema when it is
written and when it is read."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
from pathlib import Path

from runners.errors import PairbenchError
from runners.options import input_problem
from runners.records.schema import RecordError, validate

TORN_SUFFIX = ".torn"
RECORDS_FILE = "records.jsonl"
# A record its results file could not take (a full disk, a read-only folder), kept in its run's folder until the
# next run on the results folder appends it.
PENDING_FILE = "record.pending.jsonl"
LOCK_NAME = ".pairbench.lock"
# The files of a results folder that hold records or its lock: never a report's target.
STORE_FILES = (RECORDS_FILE, RECORDS_FILE + TORN_SUFFIX, PENDING_FILE, LOCK_NAME)

_written = 0  # records this process wrote, to a results file or kept pending: what an interrupted run says


def records_written() -> int:
    """How many records this process has written (appended, or kept pending in a run's folder)."""
    return _written


def os_error(exc: OSError, doing: str = "", path=None) -> str:
    """One sentence for ``exc``: what was being done, the path (``exc``'s own, else ``path``), and the meaning of
    its errno (os.strerror)."""
    meaning = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.filename is not None:
        path = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    where = " ".join(str(w) for w in (doing and f"cannot {doing}", path) if w)
    return f"{where}: {meaning}" if where else meaning


class UnsafeFile(PairbenchError):
    """A path pairbench will not write through: ``what`` it is (a symbolic link, a folder, a device...)."""

    def __init__(self, path, what: str):
        super().__init__(f"{path} {what}; move it away")
        self.path, self.what = str(path), what


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``path`` opened with ``flags`` without following a symbolic link (O_NOFOLLOW) or waiting on a FIFO: a
    planted link, a folder or anything but a regular file is refused by name (UnsafeFile), and nothing it
    points to is touched; any other failure raises its OSError."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise UnsafeFile(path, "is a symbolic link, which pairbench does not follow") from None
        if exc.errno == errno.EISDIR:
            raise UnsafeFile(path, "is a folder, not a file") from None
        raise
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise UnsafeFile(path, "is a folder, not a file" if stat.S_ISDIR(kind) else "is not a regular file")
    return fd


def _write_all(fd: int, data: bytes) -> None:
    """``data`` written to ``fd`` whole: a short write is continued (a full disk raises instead)."""
    written = os.write(fd, data)
    while written < len(data):
        written += os.write(fd, data[written:])


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
    _append_to(aside, tail + b"\n")
    os.ftruncate(fd, start)
    os.fsync(fd)
    return (
        f"{path} ended in a line of {len(tail)} bytes without its newline that is not a valid record (a run killed "
        f"while writing it); it was moved to {aside} and the file now ends at its last whole record"
    )


def _append_to(path: Path, data: bytes) -> None:
    """``data`` appended to ``path`` (created if absent, never through a link) and synced."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _records_file(path: Path):
    """``path`` opened for appending (never through a link) under an exclusive lock on the file itself."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def set_aside_torn_tail(path: Path) -> str | None:
    """Make ``path`` end at a whole record before a run appends to it (see _set_aside_tail); a missing file is
    left missing. Returns the sentence to show the user, or None when there was nothing to do."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    with _records_file(path) as fd:
        return _set_aside_tail(fd, path)


def pending_path(path: Path, record: dict) -> Path:
    """Where the record of a run that ``path`` (a results file) could not take is kept: in the run's folder."""
    return Path(path).parent / record["run_id"] / PENDING_FILE


def append_record(path: Path, record: dict, warn=None) -> None:
    """Validate ``record`` and append it as one line in one write, then fsync, so a killed run leaves at most a
    torn last line, which the next append sets aside (never glues to) and reports through ``warn``. A record
    that ``path`` cannot take (a full disk, a read-only file, a link or a folder in its place) is kept in its
    run's folder (pending_path), said through ``warn``, and appended by the next run on the folder (ready_store)."""
    global _written
    validate(record)
    path = Path(path)
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    try:
        with _records_file(path) as fd:
            if (said := _set_aside_tail(fd, path)) is not None:
                (warn or _stderr)(said)
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, line)  # O_APPEND keeps it at the end
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # no part of the line stays behind
                    os.ftruncate(fd, size)
                raise
    except (OSError, PairbenchError) as exc:
        _keep_pending(path, record, line, exc, warn or _stderr)
    _written += 1


_said_pending: set[Path] = set()


def where_records_went(results_file: Path) -> str:
    """The closing line about this process's records: appended to ``results_file``, or kept pending and where."""
    mine = sorted(p for p in _said_pending if p.parent.parent == Path(results_file).parent)
    if not mine:
        return f"records appended to {results_file}"
    kept = ", ".join(str(p) for p in mine)
    return f"records kept in {kept} ({results_file} could not take them; the next run on the folder appends them)"


def _why(exc: Exception, path: Path) -> str:
    """Why ``path`` could not be written, in words (the path itself left out where it is ``path``)."""
    if isinstance(exc, UnsafeFile) and exc.path == str(path):
        return f"it {exc.what}"
    if not isinstance(exc, OSError):
        return str(exc)
    return os_error(exc) if exc.filename not in (None, str(path)) else os.strerror(exc.errno or 0)


def _keep_pending(path: Path, record: dict, line: bytes, exc: Exception, warn) -> None:
    why = _why(exc, path)
    pending = pending_path(path, record)
    try:
        if Path(record["run_id"]).name != record["run_id"]:
            raise PairbenchError(f"run id {record['run_id']!r} is not a folder name")
        _append_to(pending, line)
    except (OSError, PairbenchError) as again:
        raise PairbenchError(
            f"the {record['record_type']} record of run {record['run_id']} could not be appended to {path} ({why}) "
            f"nor kept in {pending} ({_why(again, pending)})"
        ) from None
    if pending not in _said_pending:
        _said_pending.add(pending)
        warn(
            f"{path} cannot take the records of run {record['run_id']} ({why}); they are kept in {pending}, "
            f"and the next run on {path.parent} appends them"
        )


def ready_store(results_dir: Path) -> list[str]:
    """Make the results file of ``results_dir`` ready for a run, before any work: refuse (PairbenchError) a link,
    a folder or anything but a regular file in its place, set a torn last line aside (set_aside_torn_tail), and
    append the records that earlier runs kept pending in their folders, then remove those files. Returns the
    sentences to show."""
    path = records_path(results_dir)
    said = []
    try:
        if (torn := set_aside_torn_tail(path)) is not None:
            said.append(torn)
        for pending in sorted(Path(results_dir).glob(f"*/{PENDING_FILE}")):
            if not pending.parent.is_symlink():
                said.append(_append_pending(path, pending))
    except OSError as exc:
        raise PairbenchError(
            f"{os_error(exc, 'write', path)}, so no run starts on {results_dir} (records kept in run folders stay)"
        ) from None
    return said


def _append_pending(path: Path, pending: Path) -> str:
    """The records kept in ``pending`` appended to ``path`` (those already there once only, so an append
    interrupted before the pending file was removed is not doubled); then ``pending`` is removed."""
    fd = open_regular(pending, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
    good = [ln for ln in lines if _valid_line(ln)]
    with _records_file(path) as rfd:
        _set_aside_tail(rfd, path)
        size = os.fstat(rfd).st_size
        present = set(os.pread(rfd, size, 0).split(b"\n")) if size else set()
        new = [ln for ln in good if ln not in present]
        if new:
            _write_all(rfd, b"".join(ln + b"\n" for ln in new))
            os.fsync(rfd)
    bad = [ln for ln in lines if ln not in good]
    if bad:  # a line torn by a kill while it was kept: set aside like any torn line
        _append_to(path.with_name(path.name + TORN_SUFFIX), b"".join(ln + b"\n" for ln in bad))
    pending.unlink()
    aside = f", and {len(bad)} torn line(s) moved to {path.name}{TORN_SUFFIX}" if bad else ""
    return f"{len(new)} record(s) that an earlier run kept in {pending} appended to {path}{aside}"


def _stderr(sentence: str) -> None:
    print(f"pairbench: {sentence}", file=sys.stderr)


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
    lock = results_dir / LOCK_NAME
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PairbenchError(os_error(exc, "create the results directory")) from None
    try:
        fd = open_regular(lock, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise PairbenchError(os_error(exc, "create the lock file")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise PairbenchError(
                f"results directory {results_dir} is in use by another pairbench run (pid {holder}); "
                "wait for it to end or choose another --results-dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            raise PairbenchError(os_error(exc, "write the lock file", lock)) from None
        before = {p.name for p in results_dir.iterdir()}
        try:
            yield results_dir
        finally:  # a run that wrote nothing (a refusal, say) leaves nothing behind, not even its empty run folder
            for p in results_dir.iterdir():
                if p.name not in before and p.is_dir() and not p.is_symlink():
                    with contextlib.suppress(OSError):
                        p.rmdir()  # only when empty
            if [p.name for p in results_dir.iterdir()] == [LOCK_NAME]:
                lock.unlink()
                if created:
                    results_dir.rmdir()
    finally:
        os.close(fd)  # closing releases the lock
