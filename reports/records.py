"""The results store: append-only JSON Lines of flat, versioned run records."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runners.spec import PairbenchError


def append_record(path: Path, record: dict) -> None:
    """Append one record as one line, flushed and synced, so a killed run leaves a valid file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_records(path: Path) -> list[dict]:
    """All records of a results file; a line that is not a JSON object is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise PairbenchError(f"results file {path} does not exist")
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairbenchError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise PairbenchError(f"{path} line {number} is not a JSON object")
            out.append(record)
    return out
