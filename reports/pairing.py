"""Pair records from one or many machines on their workload fingerprint (runners.records.schema's one identity);
name what differs when two records of one workload cannot be compared."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from runners.records.schema import COMPLETE_COMPARISONS, FIELDS, IDENTITY_FIELDS, run_key

# The kinds that compare two runs rather than being one (parity of a training pair, of a forecast pair): those
# whose schema has no outcome (status); they join their runs' group on the shared fingerprint.
COMPARISON_KINDS = tuple(k for k, fields in FIELDS.items() if all(f.name != "status" for f in fields))


@dataclass
class Group:
    """Records of one workload fingerprint: the latest successful run per (framework, device), failures, and
    the comparison records (parity or forecast_parity, by the group's task)."""

    fingerprint: str
    workload: str
    task: str
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    parity: list[dict] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return len(self.runs) >= 2

    @property
    def identity(self) -> dict:
        """The identity fields every record of the group shares."""
        rec = _representative(self) or {}
        return {k: rec.get(k) for k in IDENTITY_FIELDS}

    @property
    def engine(self) -> str | None:
        """The exported-graph engine that ran the group's forecasts (runners.engines), or None: a framework itself.
        Such a group is set beside its framework's by reports.deployment, never reported as a group apart."""
        return (_representative(self) or {}).get("engine")


@dataclass
class Pairing:
    groups: list[Group]
    refusals: list[str]


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 24 else text[:12] + "..." + text[-6:]


def difference(a: dict, b: dict) -> str | None:
    """The identity fields on which two records differ, as a phrase; None when they agree."""
    parts = [f"{k} ({_short(a.get(k))} vs {_short(b.get(k))})" for k in IDENTITY_FIELDS if a.get(k) != b.get(k)]
    return ", ".join(parts) or None


def pair_records(records: list[dict]) -> Pairing:
    """Group records by fingerprint, keeping the latest successful run of each (framework, device) and every
    failure that no later success of the same run replaced; for each workload seen with several fingerprints,
    say why the groups are kept apart."""
    groups: dict[str, Group] = {}
    for rec in records:
        fp = rec["workload_fingerprint"]
        group = groups.setdefault(fp, Group(fp, rec["workload"], rec["task"]))
        if rec["record_type"] in COMPARISON_KINDS:
            group.parity.append(rec)
        elif rec["status"] == "ok":
            key = (rec["framework"], rec["device"])
            if key not in group.runs or rec["timestamp"] >= group.runs[key]["timestamp"]:
                group.runs[key] = rec
        else:
            group.failed.append(rec)
    for g in groups.values():
        done = {run_key(r): r["timestamp"] for r in g.runs.values()}
        g.failed = [r for r in g.failed if r["timestamp"] > done.get(run_key(r), "")]
    refusals = []
    by_workload: dict[tuple[str, str], list[Group]] = {}
    for g in groups.values():
        if g.engine is None:
            by_workload.setdefault((g.workload, g.task), []).append(g)
    for (workload, task), gs in by_workload.items():
        for other in gs[1:] if task not in COMPLETE_COMPARISONS else []:
            why = difference(gs[0].identity, other.identity)
            refusals.append(
                f"{workload} ({task}): runs {gs[0].fingerprint} and {other.fingerprint} are not compared: "
                f"they differ in {why or 'their fingerprint'}"
            )
    return Pairing(list(groups.values()), refusals)


def _representative(group: Group) -> dict | None:
    for rec in [*group.runs.values(), *group.failed, *group.parity]:
        return rec
    return None


def device_kind(device: str) -> str:
    return device.split(":", 1)[0]
