"""Forecast skill of each framework after a fixed training budget: RMSE and ACC of rollouts at chosen lead times."""

from __future__ import annotations

from benchmarks import common


def run_skills(workload: str, precision: str, device: str, frameworks: list[str]) -> dict:
    """Train and roll out every framework (run_skill, as `pairbench skill`); entries by framework."""
    from runners.experiments.skill import run_skill

    opts = common.task_options("skill", workload, precision, device, frameworks)
    summary = run_skill(opts, progress=lambda line: print(f"[asv] {line}", flush=True)).summary
    hours, channels = summary["hours"], summary["channels"]
    out = {}
    for rec in summary["records"]:
        fw = rec["framework"]
        values = {}
        if rec["status"] == "ok":
            for metric in ("rmse", "acc"):
                for k, row in enumerate(summary["scores"][fw][metric]):
                    for c, value in enumerate(row):
                        values[(metric, f"{round((k + 1) * hours)}h", channels[c])] = value
        out[fw] = common.entry_for(rec, values)
    return out


class Skill:
    """RMSE and anomaly correlation of rollouts on the built-in data's test split (pairbench skill, fixed seed).

    Deterministic on CPU: the same seed gives the same weights, batches and therefore the same numbers, so a
    change is a change in the framework or in pairbench, not noise.
    """

    params = [
        common.FRAMEWORKS,
        common.PRECISIONS,
        common.skill_workloads(),
        common.DEVICES,
        common.LEADS,
        common.CHANNELS,
    ]
    param_names = ["framework", "precision", "workload", "device", "lead", "channel"]
    timeout = 4 * common.TIMEOUT_S  # setup_cache runs every combination; each benchmark only reads its value

    def setup_cache(self):
        return common.run_grid("skill", common.skill_workloads(), run_skills)

    def setup(self, cache, framework, precision, workload, device, lead, channel):
        self.values = common.lookup(cache, workload, precision, device, framework)

    def _score(self, metric, lead, channel):
        value = self.values.get((metric, lead, channel))
        if value is None:
            raise common.not_measured(f"no {metric} at {lead} for {channel} (lead beyond the rollout, or undefined)")
        return value

    def track_rmse(self, cache, framework, precision, workload, device, lead, channel):
        """Root-mean-square error of the rollout against the truth (lower is better)."""
        return self._score("rmse", lead, channel)

    track_rmse.unit = "channel units"

    def track_acc(self, cache, framework, precision, workload, device, lead, channel):
        """Anomaly correlation coefficient against climatology (higher is better)."""
        return self._score("acc", lead, channel)

    track_acc.unit = "correlation"
