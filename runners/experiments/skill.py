"""Skill: train each framework to the same fixed budget (or until a validation RMSE target) on the built-in data
or the user's, from the same weights and in the same batch order, roll out from the same initial conditions, and
score every rollout with the one NumPy metric implementation beside persistence and climatology."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import numpy as np

from metrics.skill import climatology_forecast, persistence_forecast, score_lead_times
from runners.data.source import read_indices
from runners.data.stats import save_stats
from runners.errors import PairbenchError
from runners.experiments.datasets import builtin, configured, evenly, save_mask
from runners.experiments.runs import environment_fields
from runners.experiments.skeleton import Experiment, Outcome, Point, point_identity, run_point
from runners.options import SkillOptions
from runners.records import schema
from runners.spec import scored_mask
from runners.weights.canonical import starting_weights, weights_digest
from runners.workloads.registry import get_workload

# Two fp32 trainings of 400 Adam steps drift apart by rounding alone; measured RMSE curves of the two
# frameworks differ by well under 1 % (see README), so 2 % at every lead and channel is the bound.
AGREEMENT = 0.02


def _flat_scores(prefix: str, scores, channels, hours: float) -> dict:
    out = {}
    for k in range(scores.rmse.shape[0]):
        lead = f"{int(round((k + 1) * hours))}h"
        for c, name in enumerate(channels):
            out[f"rmse_{prefix}{name}_{lead}"] = _number(scores.rmse[k, c])
            out[f"acc_{prefix}{name}_{lead}"] = _number(scores.acc[k, c])
    return out


def _number(value) -> float | None:
    """A finite float, or None where the metric is undefined (climatology's ACC): never NaN in a record."""
    value = float(value)
    return value if np.isfinite(value) else None


def _table(scores) -> dict:
    return {k: [[_number(v) for v in row] for row in getattr(scores, k)] for k in ("rmse", "acc")}


def parse_target(text: str, channels, hours: float) -> tuple[str, int, float]:
    """``VAR@LEAD=VALUE`` (``z500@120h=250``, ``u@1d=0.5``) as (channel, lead steps, RMSE): the channel one of
    ``channels``, the lead a whole number of ``hours`` steps, the value a positive RMSE in the channel's units."""
    form = f"--target-rmse {text!r} is not VAR@LEAD=VALUE (e.g. {channels[0]}@{hours * 4:g}h=0.5)"
    name, at, rest = str(text).partition("@")
    lead, eq, value = rest.partition("=")
    if not (at and eq and name and lead and value):
        raise PairbenchError(form)
    if name not in channels:
        raise PairbenchError(f"--target-rmse names {name!r}, not one of the forecast channels {', '.join(channels)}")
    units = {"h": 1.0, "d": 24.0}
    try:
        lead_h = float(lead[:-1]) * units[lead[-1]]
        rmse = float(value)
    except (KeyError, ValueError, IndexError):
        raise PairbenchError(form + "; the lead takes a unit, h or d") from None
    if not lead_h > 0:
        raise PairbenchError(f"--target-rmse lead {lead} is not a positive time")
    steps = lead_h / hours
    if not (np.isfinite(steps) and steps >= 1 and abs(steps - round(steps)) < 1e-9):
        raise PairbenchError(f"--target-rmse lead {lead} is not a whole number of the data's {hours:g} h steps")
    if not (np.isfinite(rmse) and rmse > 0):
        raise PairbenchError(f"--target-rmse value {value!r} is not a positive RMSE")
    return name, int(round(steps)), rmse


def check_scorable(channels, hours: float) -> None:
    """Refuse, before any training, what the skill record could not name: a channel whose name is not letters,
    digits and underscores or would read as a reference's score (``persistence_u``), or a time step that is not a
    whole number of hours (leads are named in hours)."""
    odd = [c for c in channels if not re.fullmatch(r"\w+", c) or c.startswith(("persistence_", "climatology_"))]
    if odd:
        raise PairbenchError(
            f"channel name {odd[0]!r} cannot name a score (letters, digits and _ only, not beginning with "
            "persistence_ or climatology_); rename the variable"
        )
    if abs(hours - round(hours)) > 1e-9 or round(hours) < 1:
        raise PairbenchError(f"skill names leads in whole hours, and the data's time step is {hours:g} h")


def _validation(train: tuple[int, int], lead: int, n_init: int, breaks=()) -> tuple[tuple[int, int], np.ndarray]:
    """The training split less its last tenth (at least room for the checks), and validation starts there."""
    t0, t1 = train
    held = max(lead + 2, (t1 - t0) // 10)
    if t1 - held - t0 < 2:
        raise PairbenchError(f"the training split {train} is too short to hold out a validation part of {held} steps")
    return (t0, t1 - held), evenly((t1 - held, t1), n_init, lead, "validation split", breaks)


class Skill(Experiment):
    """Skill: train to a budget or a target on data, roll out from the same initial conditions, score."""

    task = "skill"

    def points(self, opts: SkillOptions, progress) -> list[Point]:
        spec = get_workload(opts.workload).overridden(opts.model)
        seed = secrets.randbits(31) if opts.seed is None else opts.seed
        spec, data = configured(spec, opts.data, progress) if opts.data is not None else (spec, builtin(spec, progress))
        n_out = spec.model.out_chans
        channels = data.channels[:n_out]
        hours = data.time_step_hours
        check_scorable(channels, hours)
        mask = scored_mask(spec, data.mask)
        train, target, worker_target = data.train, None, None
        if opts.target_rmse is not None:
            name, lead, value = parse_target(opts.target_rmse, channels, hours)
            train, val_inits = _validation(data.train, lead, opts.n_init, data.breaks)
            target = {"channel": name, "lead_hours": lead * hours, "rmse": value, "check_every": opts.check_interval,
                      "validation_inits": val_inits.tolist()}  # fmt: skip
            worker_target = {
                "channel_index": channels.index(name), "lead_steps": lead, "rmse": value,
                "check_every": opts.check_interval,
                "inits": val_inits.tolist(), "lats_deg": data.lats_deg.tolist(), "convention": data.weights_convention,
            }  # fmt: skip
        inits = evenly(data.test, opts.n_init, opts.n_lead, "test split", data.breaks)
        tensors, _ = starting_weights(spec.model, None, seed)
        hp = {**spec.hyper_parameters(), "lr": opts.lr, **({"target_rmse": target} if target else {})}
        worker_data = {
            "source": data.worker,
            "mean": data.mean.tolist(),
            "std": data.std.tolist(),
            "train": list(train),
            "inits": inits.tolist(),
            "n_lead": opts.n_lead,
            "target": worker_target,
            "breaks": list(data.breaks),
        }
        ident = point_identity(
            "skill",
            spec,
            digest=weights_digest(tensors),
            seed=seed,
            data={**data.identity, "train_range": list(train), "test_inits": inits.tolist(), "n_lead": opts.n_lead},
            batch_size=opts.batch_size,
            hyper_parameters=hp,
            train_steps=opts.train_steps,
        )
        scored = [
            *(["ocean at each channel's depth"] if spec.model.output_mask() is not None else []),
            *(["the cells the data has at every time"] if data.mask is not None else []),
        ]
        head = {
            "weights_convention": data.weights_convention,
            "rmse_order": "sqrt_of_mean_mse",
            "scored_cells": ", ".join(scored) or "all",
        }
        src = data.source
        clim = data.clim[:n_out]
        # Missing cells (NaN or Inf: outside the mask, never scored) take the climatology, so that nothing
        # non-finite enters the arithmetic.
        truth = np.stack([read_indices(src, np.arange(i + 1, i + 1 + opts.n_lead))[:, :n_out] for i in inits])
        x0 = read_indices(src, inits)[:, :n_out]
        truth, x0 = np.where(np.isfinite(truth), truth, clim), np.where(np.isfinite(x0), x0, clim)
        score = _scorer(clim, data.weights_convention, channels, mask, data.lats_deg)
        refs = {
            "persistence": score(persistence_forecast(x0, opts.n_lead), truth),
            "climatology": score(climatology_forecast(clim, len(inits), opts.n_lead), truth),
        }
        ref_fields = {
            **_flat_scores("persistence_", refs["persistence"], channels, hours),
            **_flat_scores("climatology_", refs["climatology"], channels, hours),
        }
        summary = {"run_dir": None, "channels": list(channels), "hours": hours, "scores": {}, "records": []}
        summary["target"] = target
        for name, s in refs.items():
            summary["scores"][name] = _table(s)
        context = {"data": data, "truth": truth, "score": score, "ref_fields": ref_fields, "summary": summary,
                   "frameworks": opts.frameworks}  # fmt: skip
        return [Point(spec, f"{spec.name}-skill-{seed}", ident, tensors, head, worker_data, context)]

    def prepare(self, point: Point, run_dir: Path) -> dict:
        data = point.context["data"]
        save_stats(run_dir / "stats", data.mean, data.std, data.clim)
        point.context["summary"]["run_dir"] = str(run_dir)
        return {"mask": save_mask(data, run_dir)}

    def announce(self, framework: str, point: Point, opts) -> str:
        target = point.context["summary"]["target"]
        what = f"until {opts.target_rmse} (at most {opts.train_steps} steps)" if target else f"{opts.train_steps} steps"
        return f"[{framework}] training {what} of batch {opts.batch_size}, then {opts.n_lead}-step rollouts ..."

    def fields(self, run, result: dict, point: Point, run_dir: Path) -> dict:
        c = point.context
        data, n_out, hours = c["data"], point.spec.model.out_chans, c["summary"]["hours"]
        scale, shift = data.std[:n_out, None, None], data.mean[:n_out, None, None]
        s = c["score"](np.load(run_dir / f"{run.framework}.npz")["forecasts"] * scale + shift, c["truth"])
        c["summary"]["scores"][run.framework] = _table(s)
        target = c["summary"]["target"]
        return {
            **environment_fields(result),
            "losses": result["losses"],
            "step_ms": result["step_ms"],
            "step_ms_p50": float(np.median(result["step_ms"])),
            "rollout_ms_p50": float(np.median(result["rollout_ms"])),
            **_flat_scores("", s, c["summary"]["channels"], hours),
            **c["ref_fields"],
            **({**result["tta"], "tta_target": target} if target else {}),
        }

    def record(self, head: dict, framework: str, run, result: dict, point: Point, run_dir: Path) -> dict:
        rec = super().record(head, framework, run, result, point, run_dir)
        if rec["status"] != "ok":
            point.context["summary"]["scores"].pop(framework, None)
        point.context["summary"]["records"].append(rec)
        return rec

    def finish(self, outcome: Outcome, point: Point, run_dir: Path) -> None:
        summary = point.context["summary"]
        # Trained to a target, each framework stops at its own step: their scores are not meant to agree.
        summary["agreement"] = None if summary["target"] else _agreement(summary["scores"], point.context["frameworks"])
        (run_dir / "skill.json").write_text(json.dumps(summary, indent=1))
        outcome.summary, outcome.comparison = summary, summary["agreement"]
        outcome.agrees = summary["agreement"] is None or summary["agreement"]["within_tolerance"]


def run_skill(opts: SkillOptions, progress=print) -> Outcome:
    """Train, roll out and score each framework; the outcome's ``summary`` is also written to skill.json."""
    opts.validate()  # before the data is prepared and before any folder is made
    exp = Skill()
    (point,) = exp.points(opts, progress)
    return run_point(exp, opts, point, progress)


def _scorer(clim, convention, channels, mask=None, lats_deg=None):
    def score(forecasts, truth):
        return score_lead_times(
            forecasts, truth, clim, convention=convention, lats_deg=lats_deg, channels=tuple(channels), mask=mask
        )

    return score


def _agreement(scores: dict, frameworks) -> dict | None:
    """The worst relative RMSE difference of the second framework against the first, over leads and channels;
    a score that is missing or not finite on either side fails the agreement and is said, never hidden."""
    ran = [fw for fw in frameworks if fw in scores]
    if len(ran) < 2:
        return None
    a, b = (np.array(scores[fw]["rmse"], dtype=np.float64) for fw in ran[:2])  # None (undefined) becomes NaN
    rel = np.abs(b - a) / a
    finite = bool(np.isfinite(rel).all())
    worst = schema.finite_or_none(np.max(rel)) if finite else None
    return {
        "reference": ran[0],
        "other": ran[1],
        "rmse_max_rel_diff": worst,
        "nonfinite": None if finite else f"{int((~np.isfinite(rel)).sum())} RMSE comparisons are missing or not finite",
        "tolerance": AGREEMENT,
        "within_tolerance": finite and worst is not None and worst <= AGREEMENT,
    }
