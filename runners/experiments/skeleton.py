"""The one skeleton every experiment runs on: a plan (the options, each point of a sweep validated before the first
runs), and one function that runs a point on every side (a framework, or a framework's exported graph run by an
engine) and returns one outcome type.

An experiment supplies only what differs (see :class:`Experiment`): the points its options make (identity,
starting weights, what its records' header adds), who runs them, what its worker is asked to do, its record's
fields, and its comparison. The skeleton does the rest the same way for all: a stamped run folder holding the
starting weights, a worker per side (quiet-machine retries included), a record appended as each finishes, then the
comparisons and their records."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runners.engines.spec import label_values
from runners.experiments.runs import open_run, recorded, run_config, run_timed_worker
from runners.records import schema
from runners.records.store import append_record, records_path


@dataclass
class Point:
    """One point of a plan: everything its records share.

    ``name`` is its run folder's name after the time stamp; ``ident`` its identity (runners.records.schema);
    ``tensors`` the starting weights every framework loads; ``head`` what its records' header adds to the identity;
    ``worker_data`` what every worker is told of the data. ``context`` holds what only the experiment reads back
    (the data set, the scoring truth)."""

    spec: object
    name: str
    ident: dict
    tensors: dict
    head: dict = field(default_factory=dict)
    worker_data: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Side:
    """Who runs a point: a framework, or an exported graph of that framework's model run by an engine (``engine``:
    its label, runners.engines.spec; None: the framework itself)."""

    framework: str
    engine: str | None = None

    @property
    def key(self) -> str:
        """The side's name among a point's sides: the engine's label, else the framework."""
        return self.engine or self.framework

    @property
    def stem(self) -> str:
        """The name of the side's files in the run folder (``torch``, ``onnxruntime-torch-fft-softshrink-cpu``)."""
        if self.engine is None:
            return self.framework
        name, values = label_values(self.engine)
        return "-".join([name, *values])


@dataclass
class Outcome:
    """What running a point gives back, the same for every experiment: its run folder, a record per framework (in
    the order run), the frameworks' comparison (None where fewer than two ran) with its record where it has one,
    and whether the comparison holds (``agrees``); ``summary`` is what the experiment wrote beside its records."""

    run_dir: Path
    records: list[dict]
    comparison: dict | None = None
    comparison_record: dict | None = None
    agrees: bool = True
    summary: dict | None = None
    more_comparisons: list[dict] = field(default_factory=list)  # further comparison records (engines' parity)

    @property
    def ok(self) -> bool:
        """Every framework ran and the comparison did not fail ("bounds not established" is no failure)."""
        return all(r["status"] == "ok" for r in self.records) and self.agrees

    @property
    def comparison_records(self) -> list[dict]:
        """Every comparison's record: the frameworks', then the further ones (engines' parity)."""
        return [*([self.comparison_record] if self.comparison_record else []), *self.more_comparisons]

    @property
    def all_records(self) -> list[dict]:
        """The sides' records, then the comparisons' records."""
        return [*self.records, *self.comparison_records]


class Experiment:
    """What one experiment supplies to the skeleton; each method's default is what most experiments do."""

    task = "pair"  # the worker's task (runners.execution.worker)

    def points(self, opts, progress) -> list[Point]:
        raise NotImplementedError

    def sides(self, opts, point: Point) -> list[Side]:
        """Who runs the point, in order: each of ``opts.frameworks``."""
        return [Side(fw) for fw in opts.frameworks]

    def prepare(self, point: Point, run_dir: Path) -> dict:
        """Files the workers read, written into the fresh run folder; returns what the workers' data adds."""
        return {}

    def announce(self, framework: str, point: Point, opts) -> str:
        raise NotImplementedError

    def execute(self, run, prefix: Path, opts, progress) -> dict:
        """One framework's worker: its result (runners.execution.worker)."""
        return run_timed_worker(run, prefix, opts.timeout_s, opts.require_quiet, progress)

    def fields(self, run, result: dict, point: Point, run_dir: Path) -> dict:
        """The measured fields of a successful worker's record."""
        raise NotImplementedError

    def record(self, head: dict, framework: str, run, result: dict, point: Point, run_dir: Path) -> dict:
        """The record of one framework's result (a failed record where it does not make a valid one)."""
        return recorded(head, framework, result, lambda: self.fields(run, result, point, run_dir))

    def finished(self, rec: dict, opts) -> str:
        """The line that says how one framework's run ended."""
        side = rec.get("engine") or rec["framework"]
        return f"[{side}] {rec['status']}" + (f": {rec['reason']}" if "reason" in rec else "")

    def compare(self, point: Point, run_dir: Path, head: dict, results: dict[str, dict]) -> Outcome | None:
        """The frameworks' comparison from the successful ``results`` (by framework, in the order run), as an
        Outcome's comparison fields (run folder and records filled in by the skeleton); None: nothing to compare."""
        return None

    def finish(self, outcome: Outcome, point: Point, run_dir: Path) -> None:
        """What the experiment writes beside its records once every framework ran."""


def expand(make: Callable[..., object], **axes: Iterable) -> list:
    """The plan of a sweep: ``make(**point)`` for every combination of the values of ``axes`` (in the order given,
    the last axis varying fastest), each validated before the first runs."""
    names = list(axes)
    plan = [
        make(**dict(zip(names, values, strict=True))) for values in itertools.product(*(tuple(axes[n]) for n in names))
    ]
    for opts in plan:
        opts.validate()
    return plan


def run_point(exp: Experiment, opts, point: Point, progress=print, done: dict[str, dict] | None = None) -> Outcome:
    """Run ``point`` on each of its sides (those in ``done``, recorded already, are taken as they are) and compare
    them; every record is appended to the results file as it is made."""
    done = done or {}
    spec = point.spec
    run_dir, weights_path, head = open_run(opts.results_dir, point.name, spec, point.tensors, point.ident, opts.device)
    run_head = {**head, **point.head}
    data = {**point.worker_data, **exp.prepare(point, run_dir)}
    records_file = records_path(opts.results_dir)
    records, results = [], {}
    for side in exp.sides(opts, point):
        if side.key in done:
            records.append(done[side.key])
            results[side.key] = {"status": "ok", "record": done[side.key], "head": head}
            progress(f"[{side.key}] already done in {done[side.key]['run_id']}: skipped (--resume)")
            continue
        ident = point.ident if side.engine is None else side_identity(point.ident, side.engine)
        engine = {} if side.engine is None else {"engine": side.engine}
        progress(exp.announce(side.key, point, opts))
        run = run_config(
            ident, spec.name, side.framework, weights_path, opts.device, task=exp.task, data=data, **engine
        )
        result = exp.execute(run, run_dir / side.stem, opts, progress)
        rec = exp.record({**run_head, **ident}, side.framework, run, result, point, run_dir)
        append_record(records_file, rec)
        records.append(rec)
        results[side.key] = {**result, "record": rec, "head": {**head, **ident}, "side": side}
        progress(exp.finished(rec, opts))
    ok = {key: res for key, res in results.items() if res["status"] == "ok"}
    found = exp.compare(point, run_dir, head, ok) if len(ok) >= 2 else None
    outcome = found or Outcome(run_dir, records)
    outcome.run_dir, outcome.records = run_dir, records
    for rec in outcome.comparison_records:
        append_record(records_file, rec)
    exp.finish(outcome, point, run_dir)
    return outcome


def side_identity(ident: dict, engine: str) -> dict:
    """The identity of an engine's side of a point whose identity is ``ident``: the same work, run by ``engine``."""
    fields = {k: ident[k] for k in schema.IDENTITY_FIELDS if k != "task"}
    return schema.identity(ident["record_type"], **fields, engine=engine)


# What a point's identity says where its experiment does not set it: fp32 eager forecast steps in one process.
_IDENTITY_DEFAULTS = {
    "precision": "fp32", "mode": "eager", "recompute": False, "threads": None, "warmup_steps": 0, "train_steps": 0,
    "forward_steps": 0, "objective": "forecast", "nproc": 1,
}  # fmt: skip


def point_identity(kind: str, spec, *, digest: str, seed: int, data: dict, batch_size: int, **given) -> dict:
    """The identity (runners.records.schema.identity) of a point of ``spec`` whose starting weights have ``digest``:
    the workload's hyper-parameters unless ``given``, and _IDENTITY_DEFAULTS for what ``given`` does not set."""
    fields = {**_IDENTITY_DEFAULTS, "hyper_parameters": spec.hyper_parameters(), **given}
    return schema.identity(
        kind, model=spec.model.to_dict(), weights_sha256=digest, seed=seed, data=data, batch_size=batch_size, **fields
    )


def reference_and_other(frameworks: Iterable[str]) -> tuple[str, str]:
    """The reference of a comparison (PyTorch where it ran, else the first) and the framework compared with it."""
    ran = list(frameworks)
    reference = "torch" if "torch" in ran else ran[0]
    return reference, next(fw for fw in ran if fw != reference)


def holds(found: dict | None) -> bool:
    """Whether a parity comparison (metrics.parity) holds: nothing compared, or a verdict other than fail ("bounds not
    established" is no failure)."""
    return found is None or found["verdict"] != "fail"


def comparison_outcome(head: dict, kind: str, found: dict) -> Outcome:
    """A parity comparison's part of an Outcome: ``found``, its record of ``kind``, and whether it holds."""
    record = schema.record(head, kind, **found)
    return Outcome(Path(), [], comparison=found, comparison_record=record, agrees=holds(found))
