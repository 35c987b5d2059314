"""Forecasts: latency and energy of a ten-day autoregressive forecast in each framework and by each framework's exported
graph (ONNX Runtime, MindIR: pairbench forecast --engine)."""

from __future__ import annotations

from benchmarks import common


def forecast_workloads() -> list[str]:
    return common.training_workloads()


def run_forecasts(workload: str, precision: str, device: str, frameworks: list[str]) -> dict:
    """Forecast with every framework (run_forecast, as `pairbench forecast`); entries by framework."""
    from runners.experiments.forecast import run_forecast

    opts = common.task_options("forecast", workload, precision, device, frameworks)
    # the frameworks' own forecasts and those of their exported graphs (ONNX Runtime from PyTorch, MindIR)
    opts.engines = (*frameworks, *(ENGINE_OF[fw] for fw in frameworks))
    outcome = run_forecast(opts, progress=lambda line: print(f"[asv] {line}", flush=True))
    return {_side(r): common.entry_for(r, _forecast_values(r)) for r in outcome.records}


# The exported graph tracked for each framework (runners.engines.spec, each with its defaults).
ENGINE_OF = {"torch": "onnxruntime", "mindspore": "mindir"}


def _side(record: dict) -> str:
    """The benchmark's ``framework`` parameter of a record: its framework, or its engine's name."""
    from runners.engines.spec import label_values

    return label_values(record["engine"])[0] if record.get("engine") else record["framework"]


def _forecast_values(record: dict) -> dict:
    return {
        "forecast_ms_p50": record.get("forecast_ms_p50"),
        "forecast_days_per_s": record.get("forecast_days_per_s"),
        **common.measured_energy(record, "energy_j_per_forecast"),
    }


class Forecast:
    """A ten-day forecast (the workload's time step) of one member from the same weights and initial conditions
    in each framework; latency is the median over timed repeats, synchronised, from the host's initial
    conditions to the last lead."""

    params = [[*common.FRAMEWORKS, *ENGINE_OF.values()], common.PRECISIONS, forecast_workloads(), common.DEVICES]
    param_names = ["framework", "precision", "workload", "device"]
    timeout = 4 * common.TIMEOUT_S  # setup_cache runs every combination; each benchmark only reads its value

    def setup_cache(self):
        return common.run_grid("forecast", forecast_workloads(), run_forecasts, sides=self.params[0])

    def setup(self, cache, framework, precision, workload, device):
        self.values = common.lookup(cache, workload, precision, device, framework)

    def track_forecast_ms_p50(self, cache, framework, precision, workload, device):
        """Milliseconds per ten-day forecast, median of the timed repeats (lower is better)."""
        return self.values["forecast_ms_p50"]

    track_forecast_ms_p50.unit = "ms per forecast"

    def track_forecast_days_per_s(self, cache, framework, precision, workload, device):
        """Forecast days computed per second of wall time (higher is better)."""
        return self.values["forecast_days_per_s"]

    track_forecast_days_per_s.unit = "forecast-days/s"

    def track_energy_j_per_forecast(self, cache, framework, precision, workload, device):
        """Joules per ten-day forecast; measured only (NVML, npu-smi, RAPL), never estimated (lower is better)."""
        return common.energy(self.values, "energy_j_per_forecast")

    track_energy_j_per_forecast.unit = "J per forecast"
