"""Where a report is written: its target checked before any work (never a records file, a folder, a device or
a file that is not a report), and each file written whole through a fresh temporary file, never through a link."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from reports import FORMATS
from reports.costs import carbon_intensity as parse_intensity
from runners.errors import PairbenchError
from runners.records.store import STORE_FILES, TORN_SUFFIX, open_regular, records_path

REPORT_TITLE = "pairbench report"  # the HTML report's title and the Markdown report's heading: how one is known


def check_target(out: Path, fmt: str, sources, carbon_intensity: str | float | None = None) -> None:
    """Refuse, in one sentence and before any work, a report target ``out`` that is not a report's to take: a
    records file (by name, or any of ``sources`` however it is reached), a folder (a file for csv), a device
    or FIFO, a file that is not a pairbench report, or a place that cannot be written; and a carbon intensity
    (``carbon_intensity``, else PAIRBENCH_CARBON_INTENSITY) that is not a finite number above 0."""
    if fmt not in FORMATS:
        raise PairbenchError(f"unknown report format '{fmt}'; choose from {', '.join(FORMATS)}")
    parse_intensity(carbon_intensity)
    out = Path(out)
    stores = {_resolved(records_path(p) if Path(p).is_dir() else Path(p)) for p in sources}
    if out.name in STORE_FILES or out.name.endswith(TORN_SUFFIX) or _resolved(out) in stores:
        raise PairbenchError(f"{out} holds records, so it is never a report's target: name another file")
    try:
        st = os.stat(out)
    except OSError:  # absent (or a dangling link, which the report replaces): checked by its folder below
        st = None
    if fmt == "csv":
        if out.suffix.lower() == ".csv" or (st is not None and not stat.S_ISDIR(st.st_mode)):
            raise PairbenchError(
                f"a CSV report is one file per table: -o names the folder to write them into, not {out}"
            )
    elif st is not None and stat.S_ISDIR(st.st_mode):
        raise PairbenchError(f"{out} is a folder: name the {fmt} report's file (only csv is written into a folder)")
    elif st is not None and not stat.S_ISREG(st.st_mode):
        raise PairbenchError(f"{out} is not a regular file: name a file for the report")
    elif st is not None and st.st_size and not _is_report(out):
        raise PairbenchError(
            f"{out} exists and is not a pairbench report, which is all a report replaces: name a new file"
        )
    folder = out if fmt == "csv" else out.parent
    while not os.path.lexists(folder) and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise PairbenchError(f"cannot write the report {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PairbenchError(f"cannot write the report {out}: the folder {folder} is not writable")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: compared as written
        return path.absolute()


# The tables a CSV report wrote into its folder, one name a line: the files a later CSV report may replace there.
CSV_MANIFEST = ".pairbench-csv-tables"


def check_csv_targets(folder: Path, paths: list[Path]) -> None:
    """Refuse, before any is written, a CSV table's file that exists and is not one an earlier CSV report wrote in
    ``folder`` (named in its CSV_MANIFEST): a user's file of the same name, a link, anything but a regular file."""
    try:
        ours = set((folder / CSV_MANIFEST).read_text().split()) if (folder / CSV_MANIFEST).is_file() else set()
    except (OSError, UnicodeDecodeError):
        ours = set()
    for path in paths:
        if not os.path.lexists(path):
            continue
        if path.is_symlink() or not path.is_file():
            raise PairbenchError(f"{path} is not a regular file: a CSV report writes no table there")
        if path.name not in ours:
            raise PairbenchError(
                f"{path} exists and is not a table of an earlier pairbench report, which is all a CSV report "
                "replaces: name another folder"
            )


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a report pairbench wrote: an HTML page titled REPORT_TITLE, or Markdown whose first line
    is its heading (the words alone, which a README may hold, are not enough)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return f"<title>{REPORT_TITLE}</title>" in head or head.split("\n", 1)[0].strip() == f"# {REPORT_TITLE}"


def write_file(out: Path, text: str) -> None:
    """``text`` written to ``out`` through a fresh temporary file beside it (created exclusively, so never
    through a link or over a file already there), synced and renamed over ``out``, which replaces ``out`` itself
    (a link at ``out``, not what it points to). On failure the temporary file is removed and the error is one
    sentence naming ``out``."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PairbenchError(f"cannot write the report {out}: {os.strerror(exc.errno) if exc.errno else exc}") from None
