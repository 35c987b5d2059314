"""The record schema: every record kind with its fields, units and provenance values; the identity of a
run; the builders every writer uses; and ``validate()``, applied when a record is written and when it is read.

A record is one flat JSON object. Its identity (``IDENTITY_FIELDS``) is everything that changes the work or the
way it is executed; ``workload_fingerprint`` is the hash of exactly those fields, recomputed on every read, so
two records with one fingerprint are the same work and a hand-edited identity is refused. Which framework ran
it, and on which device, is not part of the fingerprint: that is what a report compares. ``RUN_KEY`` (the
fingerprint, framework and device) names one run; ``--resume`` and the report's "latest run" use it.

Every count that sets how many samples a recorded figure rests on is in the identity: ``warmup_steps``,
``train_steps`` and ``forward_steps`` (the timed forward passes of a run; 0 where none are timed: skill, forecast
and data-parallel records). A forecast record (``pairbench forecast``, inference only) keeps the same identity
fields: ``batch_size`` is the number of forecasts made at once (ensemble members or initial conditions),
``warmup_steps`` the untimed forecasts, ``train_steps`` 0, and ``data`` names the initial conditions, the number of
lead steps, their length in hours and the least number of timed repeats (more are timed while they last under 2 s;
``forecast_ms`` holds them all). A skill record's ``data`` holds its initial conditions and lead steps too.
A skill run trained to a target (``--target-rmse``) has the target and its checking in ``hyper_parameters``.

Units are in the field names (``_ms``, ``_s``, ``_mb``, ``_w``, ``_j``); a value that could not be obtained is
``None`` with its reason beside it, never 0, and no record holds NaN or Inf.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from metrics.device.reading import SCOPES
from metrics.load import VERDICTS as LOAD_VERDICTS
from runners.errors import PairbenchError
from runners.spec import MODES, OBJECTIVES, PRECISIONS

SCHEMA_VERSION = 3
# Why records of an earlier version cannot be read: what their identity left out.
OLDER_VERSIONS = {
    1: "version 1 left mode, recompute, threads and the process count out of a run's identity",
    2: "version 2 left the number of timed forward passes (forward_steps) out of a run's identity",
}
KINDS = ("run", "parity", "skill", "data_parallel", "forecast", "forecast_parity")
TASK_OF_KIND = {
    "run": "pair", "parity": "pair", "skill": "skill", "data_parallel": "data_parallel", "forecast": "forecast",
    "forecast_parity": "forecast",
}  # fmt: skip
# The diagnosis kind (pairbench diagnose, runners.experiments.diagnose): two sides compared layer by layer.
KINDS = (*KINDS, "diagnosis")
TASK_OF_KIND["diagnosis"] = "diagnose"
COMPLETE_COMPARISONS = ("diagnose",)  # tasks each of whose records compares two computations on its own: never paired
STATUSES = ("ok", "failed", "unsupported", "unavailable")
PROVENANCE = ("measured", "estimated", "unavailable")
VERDICTS = ("pass", "fail", "bounds not established")
# What the power figures of a run cover (runners.execution: tasks.timed_training, tasks.train_to_target,
# rollout.execute_forecast).
# What a power window holds, by name (the record's ``power_window`` says it in words).
WINDOW_STEPS = "timed steps"
WINDOW_STEPS_AND_INPUTS = "timed steps with their input generation and transfer"
WINDOW_FORECASTS = "timed forecasts, each from the initial conditions on the host to the last lead"
WINDOW_TO_TARGET = "training steps and validation checks, until the target was reached or the budget spent"
POWER_WINDOWS = (WINDOW_STEPS, WINDOW_STEPS_AND_INPUTS, WINDOW_FORECASTS, WINDOW_TO_TARGET)

# Everything that changes the work or the way it is executed; the fingerprint hashes exactly these.
IDENTITY_FIELDS = (
    "task", "model", "weights_sha256", "seed", "data", "hyper_parameters", "batch_size", "precision", "mode",
    "recompute", "threads", "warmup_steps", "train_steps", "forward_steps", "objective", "nproc",
)  # fmt: skip
# In the identity only where set: the exported-graph engine of a forecast (runners.engines.spec; its label). A record
# without one hashes exactly IDENTITY_FIELDS, so records written before engines existed keep their fingerprints.
OPTIONAL_IDENTITY = ("engine",)
RUN_KEY = ("workload_fingerprint", "framework", "device")


class RecordError(PairbenchError):
    """A record that does not match the schema; the message names the field."""


@dataclass(frozen=True)
class Field:
    """One field: its type code (``str int num bool dict list nums strs any``; ``times``: timings, a non-empty list of
    positive numbers; ``numsornull``: finite numbers or None; ``?`` allowing None), and
    whether it is required always (``always``), only when the run succeeded (``ok``), or never (``opt``)."""

    name: str
    type: str
    need: str = "always"
    choices: tuple = ()


def _f(spec: str, need: str = "always", choices: tuple = ()) -> list[Field]:
    """Fields from ``"name:type name:type ..."``."""
    return [Field(*item.split(":"), need, choices) for item in spec.split()]


_STATS = " ".join(f"{{p}}_ms_{s}:num" for s in ("p50", "p90", "p99", "mean", "min", "max"))

COMMON = [
    *_f("schema_version:int run_id:str timestamp:str workload:str workload_fingerprint:str device:str"),
    *_f("record_type:str", choices=KINDS),
    *_f("pairbench_commit:str?"),
    *_f("task:str model:dict weights_sha256:str seed:int data:dict hyper_parameters:dict batch_size:int"),
    *_f("recompute:bool threads:int? warmup_steps:int train_steps:int forward_steps:int nproc:int"),
    *_f("precision:str", choices=PRECISIONS),
    *_f("mode:str", choices=MODES),
    *_f("objective:str", choices=OBJECTIVES),
    *_f("engine:str", "opt"),
]
_OUTCOME = [*_f("framework:str"), *_f("status:str", choices=STATUSES), *_f("reason:str", "opt")]
# What a worker reports about where it ran; ``threads_used`` is what the framework says it used.
# ``cpu_features``: the flags that change low-precision and compiled numbers (metrics.device.cpu); ``compile_vec_isa``:
# the vector ISA torch.compile generated CPU code for; ``compile_workaround``: a compiler setting changed because
# the compiled model was not finite where eager was (runners.backends.torch_backend), with the defect named.
ENVIRONMENT = [
    *_f(
        "framework_version:str device_name:str cpu_name:str cpu_features:str threads_used:str execution_mode:str "
        "python:str host:str param_count:int build_s:num host_peak_rss_mb:num",
        "ok",
    ),
    *_f("cuda_runtime:str? compile_vec_isa:str? compile_workaround:str?", "opt"),
]
POWER = [
    *_f("power_source:str power_window_s:num energy_j:num? power_w_mean:num? power_w_peak:num?", "ok"),
    *_f("power_reason:str? power_samples:list energy_j_per_sample:num? samples_per_j:num?", "ok"),
    *_f("power_partial_reason:str?", "opt"),
    *_f("power_provenance:str", "ok", PROVENANCE),
    *_f("power_window:str", "ok", POWER_WINDOWS),
    # What the watts cover (metrics.device.reading.SCOPES), and the sampling checked against MLPerf Power's minimum.
    *_f("power_scope:str", "ok", SCOPES),
    *_f("power_scope_label:str power_rate_hz:num? power_rate_hz_achieved:num?", "ok"),
    *_f("power_window_ok:bool? power_window_reason:str?", "ok"),
]
# How quiet the machine was over the timed window (metrics.load): the verdict, its reason and its figures.
LOAD = [
    *_f("load_verdict:str", "ok", LOAD_VERDICTS),
    *_f("load_verdict_reason:str load_window_s:num load_other_cpu_frac:num? load_steal_frac:num?", "ok"),
    *_f("load_avg_1m:num? load_throttle_events:int? load_cv:num? load_reason:str?", "ok"),
    *_f("load_attempts:int load_waits:str", "opt"),  # --require-quiet: how many runs, what each wait found
]
FIELDS: dict[str, list[Field]] = {
    "run": [
        *COMMON,
        *_OUTCOME,
        *_f("weights_source:str"),
        *ENVIRONMENT,
        *POWER,
        *LOAD,
        *_f(
            "loss_initial:num losses:nums forward_ms:times step_ms:times input_ms:nums first_step_ms:num? "
            "compile_s:num forward_first_ms:num first_backward_ms:num backward_rss_growth_mb:num "
            "saved_activations_mb:num? device_peak_mem_mb:num? device_peak_mem_reason:str? samples_per_s:num "
            "flops_forward_per_sample:num flops_train_per_sample:num achieved_tflops_train:num hardware_profile:str? "
            "mfu_train:num? mfu_reason:str? provenance:dict gradient_missing:strs "
            + " ".join(_STATS.format(p=p) for p in ("forward", "step", "input")),
            "ok",
        ),
    ],
    "skill": [
        *COMMON,
        *_OUTCOME,
        *_f("weights_convention:str rmse_order:str scored_cells:str"),
        *ENVIRONMENT,
        *POWER,
        *LOAD,
        *_f("losses:nums step_ms:times step_ms_p50:num rollout_ms_p50:num", "ok"),
        # Trained to a target (--target-rmse): whether and when the validation RMSE reached it; each check is
        # [steps done, the RMSE then (None where not finite)]. Times and energy are from the start of training.
        *_f("tta_reached:bool tta_checks:list tta_best_rmse:num? tta_steps:int? tta_wall_s:num?", "opt"),
        *_f("tta_energy_j:num? tta_energy_reason:str? tta_target:dict", "opt"),
    ],
    "forecast": [
        *COMMON,
        *_OUTCOME,
        *_f("weights_source:str initial_conditions:str n_lead:int lead_hours:num forecast_hours:num"),
        *ENVIRONMENT,
        *POWER,
        *LOAD,
        *_f(
            "forecast_ms:times lead_ms_p50:num first_forecast_ms:num compile_s:num forecast_days_per_s:num "
            "energy_j_per_forecast:num? energy_j_per_forecast_day:num? device_peak_mem_mb:num? "
            "device_peak_mem_reason:str? flops_forward_per_sample:num hardware_profile:str? provenance:dict "
            + _STATS.format(p="forecast"),
            "ok",
        ),
    ],
    "forecast_parity": [
        *COMMON,
        *_f("reference:str other:str rel_l2_per_lead:numsornull rel_l2_first_lead:num? rel_l2_max:num?"),
        *_f("tolerances:dict? bounds_source:str within_tolerance:bool? nonfinite:strs"),
        *_f("verdict:str", choices=VERDICTS),
    ],
    "parity": [
        *COMMON,
        *_f("reference:str other:str forward_rel_l2:num? gradient_max_rel_l2:num? gradient_worst_parameter:str?"),
        *_f("loss_max_rel:num? loss_rel_per_step:list tolerances:dict? bounds_source:str within_tolerance:bool?"),
        *_f("nonfinite:strs gradient_missing:strs gradient_mismatch:strs"),
        *_f("verdict:str", choices=VERDICTS),
    ],
    "data_parallel": [
        *COMMON,
        *_OUTCOME,
        *_f("launcher:str weights_source:str"),
        *_f("local_batch:int backend:str results_dir:str wall_s:num launcher_stopped:str?", "opt"),
        *_f("launcher_exit_code:int?", "opt"),
        # One node of a run over several: each node's record holds its own ranks (the report merges them).
        *_f("nnodes:int node_rank:int master:str", "opt"),
        *_f(
            "framework_version:str losses:nums step_ms:nums samples_per_s_total:num samples_per_s_per_device:num "
            "replicas_identical:bool " + _STATS.format(p="step"),
            "ok",
        ),
        # Beside one process with the same global batch (the CLI always runs it; the API on request).
        *_f(
            "reference_samples_per_s:num reference_step_ms_p50:num reference_losses:nums speedup:num "
            "scaling_efficiency:num loss_max_rel_diff:num grad0_max_rel_l2:num param_max_rel_l2:num",
            "opt",
        ),
    ],
}
# An exported-graph engine's forecast (runners.engines): the formulation exported, how and how long, the file, how
# long its session (ONNX Runtime) or graph (MindIR) took to open, the provider asked for and those the session used,
# the runtime's versions, the fp16 conversion applied, and whether MindSpore Lite is importable.
FIELDS["forecast"] += [
    *_f("engine_source:str engine_spectral:str? engine_shrink:str? engine_exporter:str engine_export_s:num", "opt"),
    *_f("engine_file:str engine_bytes:int engine_sha256:str engine_session_s:num engine_runtime:str", "opt"),
    *_f("engine_runtime_version:str engine_provider_requested:str engine_providers_used:strs", "opt"),
    *_f("engine_opset:int? engine_onnx_version:str engine_conversion:str engine_lite:str", "opt"),
    *_f("engine_device_target:str", "opt"),
]
ENGINE_FIELDS = tuple(f.name for f in FIELDS["forecast"] if f.name.startswith("engine_"))
# Families of fields named by pattern: power collectors' extras, per-rank step times, skill scores.
PATTERNS: dict[str, list[tuple[re.Pattern, str]]] = {
    "run": [(re.compile(r"^(power|energy)_\w+$"), "any")],
    "skill": [(re.compile(r"^(power|energy)_\w+$"), "any"), (re.compile(r"^(rmse|acc)_\w+_\d+h$"), "num?")],
    "parity": [],
    "data_parallel": [(re.compile(r"^step_ms_rank\d+$"), "nums")],
    "forecast": [(re.compile(r"^(power|energy)_\w+$"), "any")],
    "forecast_parity": [],
}
# A diagnosis: its identity is side a's setting (precision, mode) with both sides named in ``data["sides"]``;
# ``side_a``/``side_b`` say how each ran (framework version, how its layers were captured and whether capture
# changed its output); ``layers`` holds one row per layer in execution order (relative L2 of the outputs, max abs
# difference, non-finite counts on each side, the bound and whether it is exceeded, the worst parameter gradient);
# ``gradients`` one row per parameter.
FIELDS["diagnosis"] = [
    *COMMON,
    *_f("weights_source:str side_a:dict side_b:dict layers:list gradients:list unmatched:strs"),
    *_f("tolerances:dict? bounds_source:str"),
    *_f("first_past_bound:str? first_gradient_past_bound:str? first_nonfinite:str? first_nonfinite_side:str?"),
    *_f("verdict:str", choices=(*VERDICTS, "not compared")),
    *_f("reason:str", "opt"),
]
PATTERNS["diagnosis"] = []


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "num": _finite,
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "nums": lambda v: isinstance(v, list) and all(_finite(x) for x in v),
    "times": lambda v: isinstance(v, list) and len(v) > 0 and all(_finite(x) and x > 0 for x in v),
    "numsornull": lambda v: isinstance(v, list) and all(x is None or _finite(x) for x in v),
    "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "any": lambda v: True,
}
_NAMES = {
    "str": "a string", "int": "an integer", "num": "a finite number", "bool": "true or false", "dict": "an object",
    "list": "a list", "nums": "a list of finite numbers", "strs": "a list of strings", "any": "a value",
    "times": "a non-empty list of positive finite numbers", "numsornull": "a list of finite numbers or nulls",
}  # fmt: skip


def _type_ok(code: str, value) -> bool:
    if code.endswith("?"):
        return value is None or _CHECKS[code[:-1]](value)
    return _CHECKS[code](value)


def _nonfinite_path(value, path: str = "") -> str | None:
    """Where a NaN or Inf sits inside ``value`` (a JSON-like tree), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _nonfinite_path(v, f"{path}[{k!r}]" if path else str(k))
        if found:
            return found
    return None


def validate(record) -> dict:
    """``record`` if it matches its kind's schema; otherwise RecordError naming the first bad field."""
    if not isinstance(record, dict):
        raise RecordError("a record must be a JSON object")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version in OLDER_VERSIONS:
            raise RecordError(
                f"it is a schema version {version} record: {OLDER_VERSIONS[version]}, so its runs cannot be paired "
                "safely; run them again with this pairbench"
            )
        raise RecordError(f"schema_version is {version!r}; this pairbench reads version {SCHEMA_VERSION}")
    kind = record.get("record_type")
    if kind not in KINDS:
        raise RecordError(f"field 'record_type' is {kind!r}, not one of {', '.join(KINDS)}")
    ok = record.get("status", "ok") == "ok"
    known = set()
    for f in FIELDS[kind]:
        known.add(f.name)
        if f.name not in record:
            if f.need == "always" or (f.need == "ok" and ok):
                raise RecordError(f"field '{f.name}' is missing")
            continue
        if not _type_ok(f.type, record[f.name]):
            raise RecordError(f"field '{f.name}' is {record[f.name]!r:.60}, not {_NAMES[f.type.rstrip('?')]}")
        if f.choices and record[f.name] not in f.choices:
            raise RecordError(f"field '{f.name}' is {record[f.name]!r}, not one of {', '.join(map(str, f.choices))}")
    if not ok and not record.get("reason"):
        raise RecordError(f"a record with status '{record.get('status')}' must say why (field 'reason')")
    for name, value in record.items():
        if name in known:
            continue
        code = next((c for pattern, c in PATTERNS[kind] if pattern.match(name)), None)
        if code is None:
            raise RecordError(f"field '{name}' is not a field of a {kind} record")
        if not _type_ok(code, value):
            raise RecordError(f"field '{name}' is {value!r:.60}, not {_NAMES[code.rstrip('?')]}")
    where = _nonfinite_path(record)
    if where:
        raise RecordError(f"field '{where}' is not a finite number (NaN or Inf never enters a record)")
    if record["task"] != TASK_OF_KIND[kind]:
        raise RecordError(f"field 'task' is {record['task']!r}; a {kind} record's task is {TASK_OF_KIND[kind]!r}")
    if record["workload_fingerprint"] != fingerprint(record):
        raise RecordError("field 'workload_fingerprint' does not match the record's identity fields")
    return record


def fingerprint(record: dict) -> str:
    """Short SHA-256 of the identity fields of ``record`` (canonical JSON): equal means the same work."""
    parts = {k: record.get(k) for k in IDENTITY_FIELDS}
    parts.update({k: record[k] for k in OPTIONAL_IDENTITY if record.get(k) is not None})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def base_fingerprint(record: dict) -> str:
    """The fingerprint of ``record``'s work without OPTIONAL_IDENTITY: an exported graph's forecast has the
    fingerprint of the framework forecast it is measured against."""
    return fingerprint({k: record.get(k) for k in IDENTITY_FIELDS})


def run_key(record: dict) -> tuple:
    """Which run a record is: its work, its framework and its device (see RUN_KEY)."""
    return tuple(record.get(k) for k in RUN_KEY)


def identity(kind: str, **fields) -> dict:
    """The identity of a run of ``kind``: exactly IDENTITY_FIELDS (``task`` follows from the kind) and those of
    OPTIONAL_IDENTITY that are not None, with the fingerprint. A missing or unexpected field is a programming error,
    raised as TypeError."""
    fields = {"task": TASK_OF_KIND[kind], **fields}
    fields = {k: v for k, v in fields.items() if not (k in OPTIONAL_IDENTITY and v is None)}
    if set(fields) - set(OPTIONAL_IDENTITY) != set(IDENTITY_FIELDS):
        odd = sorted((set(fields) - set(OPTIONAL_IDENTITY)) ^ set(IDENTITY_FIELDS))
        raise TypeError(f"identity of a {kind} run: fields {', '.join(odd)} missing or unexpected")
    for name, value in fields.items():  # checked before any work: a run whose record cannot be written never starts
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise RecordError(f"{name} = {value!r} cannot be recorded (not a finite JSON value)") from None
    return {"record_type": kind, **fields, "workload_fingerprint": fingerprint(fields)}


def header(ident: dict, *, run_id: str, timestamp: str, workload: str, device: str, commit: str | None) -> dict:
    """The fields every record of one invocation shares: schema version, identity, where and when."""
    return {
        "schema_version": SCHEMA_VERSION,
        **ident,
        "run_id": run_id,
        "timestamp": timestamp,
        "workload": workload,
        "device": device,
        "pairbench_commit": commit,
    }


def record(head: dict, kind: str | None = None, **fields) -> dict:
    """One validated record: ``head`` (see :func:`header`), optionally as another kind of the same work
    (a parity record beside its runs), with ``fields``."""
    rec = {**head, **fields}
    if kind is not None:
        rec["record_type"] = kind
    return validate(rec)


def outcome(head: dict, framework: str, result: dict, fields: dict | None = None) -> dict:
    """A run's record from a worker's result: ``fields`` when it succeeded, the status and reason when not."""
    if result["status"] != "ok":
        return record(head, framework=framework, status=result["status"], reason=result.get("reason") or "unknown")
    return record(head, framework=framework, status="ok", **(fields or {}))


def finite_or_none(value) -> float | None:
    """``value`` as a float when finite, else None: the only way a computed figure enters a record."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
