"""Pair records from one or many machines on their workload fingerprint; name what differs when two
records of one workload cannot be compared."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# What makes two runs the same work; any difference here forbids a comparison.
IDENTITY_FIELDS = (
    "task", "model", "weights_sha256", "seed", "data_generator", "data_sha256", "hyper_parameters", "batch_size",
    "precision", "train_steps", "warmup_steps", "test_inits", "objective",
)  # fmt: skip


@dataclass
class Group:
    """Runs of one workload fingerprint, the latest successful run per (framework, device)."""

    fingerprint: str
    workload: str
    task: str
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    parity: list[dict] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return len(self.runs) >= 2


@dataclass
class Pairing:
    groups: list[Group]
    refusals: list[str]


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 24 else text[:12] + "..." + text[-6:]


def difference(a: dict, b: dict) -> str | None:
    """The first identity field on which two records differ, as a phrase; None when they agree."""
    for key in IDENTITY_FIELDS:
        if a.get(key) != b.get(key):
            return f"{key} ({_short(a.get(key))} vs {_short(b.get(key))})"
    return None


def pair_records(records: list[dict]) -> Pairing:
    """Group run records by fingerprint; for each workload seen with several fingerprints, say why the
    groups are kept apart."""
    groups: dict[str, Group] = {}
    for rec in records:
        fp = rec.get("workload_fingerprint")
        if fp is None:
            continue
        group = groups.setdefault(fp, Group(fp, rec.get("workload", "?"), rec.get("task", "pair")))
        if rec.get("record_type") == "parity":
            group.parity.append(rec)
        elif rec.get("status") == "ok":
            key = (rec["framework"], rec.get("device", "cpu"))
            if key not in group.runs or rec.get("timestamp", "") >= group.runs[key].get("timestamp", ""):
                group.runs[key] = rec
        else:
            group.failed.append(rec)
    refusals = []
    by_workload: dict[tuple[str, str], list[Group]] = {}
    for g in groups.values():
        by_workload.setdefault((g.workload, g.task), []).append(g)
    for (workload, task), gs in by_workload.items():
        first = _representative(gs[0])
        for other in gs[1:]:
            why = difference(first, _representative(other)) if first and _representative(other) else None
            refusals.append(
                f"{workload} ({task}): runs {gs[0].fingerprint} and {other.fingerprint} are not compared: "
                f"they differ in {why or 'their fingerprint'}"
            )
    return Pairing(list(groups.values()), refusals)


def _representative(group: Group) -> dict | None:
    for rec in [*group.runs.values(), *group.failed]:
        return rec
    return None


def device_kind(device: str) -> str:
    return device.split(":", 1)[0]
