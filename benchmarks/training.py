"""Training speed, memory and energy of each framework: one `pairbench run` per combination, cached for asv."""

from __future__ import annotations

from benchmarks import common


def _pair_values(record: dict) -> dict:
    return {
        "samples_per_s": record["samples_per_s"],
        "step_ms_p50": record["step_ms_p50"],
        "host_peak_rss_mb": record["host_peak_rss_mb"],
        **common.measured_energy(record, "energy_j_per_sample"),
    }


def run_pairs(workload: str, precision: str, device: str, frameworks: list[str]) -> dict:
    """Both frameworks from one weights file (run_pair, as `pairbench run --no-skill`); entries by framework."""
    from runners.experiments.pair import run_pair

    opts = common.task_options("pair", workload, precision, device, frameworks)
    outcome = run_pair(opts, progress=lambda line: print(f"[asv] {line}", flush=True))
    return {
        r["framework"]: common.entry_for(r, _pair_values(r) if r["status"] == "ok" else {}) for r in outcome.records
    }


class PairedTraining:
    """Timed Adam steps (after warm-up) of one workload in one framework, from the weights both frameworks share."""

    params = [common.FRAMEWORKS, common.PRECISIONS, common.training_workloads(), common.DEVICES]
    param_names = ["framework", "precision", "workload", "device"]
    timeout = 4 * common.TIMEOUT_S  # setup_cache runs every combination; each benchmark only reads its value

    def setup_cache(self):
        return common.run_grid("pair", common.training_workloads(), run_pairs)

    def setup(self, cache, framework, precision, workload, device):
        self.values = common.lookup(cache, workload, precision, device, framework)

    def track_samples_per_s(self, cache, framework, precision, workload, device):
        """Training throughput: batch size / median step time."""
        return self.values["samples_per_s"]

    track_samples_per_s.unit = "samples/s"

    def track_step_ms_p50(self, cache, framework, precision, workload, device):
        """Median latency of one training step (forward, backward, Adam update, device synchronised)."""
        return self.values["step_ms_p50"]

    track_step_ms_p50.unit = "ms"

    def track_peak_rss_mb(self, cache, framework, precision, workload, device):
        """Peak resident memory of the worker process (host memory; getrusage)."""
        return self.values["host_peak_rss_mb"]

    track_peak_rss_mb.unit = "MB"

    def track_energy_j_per_sample(self, cache, framework, precision, workload, device):
        """Energy per training sample over the timed steps; measured only (NVML, npu-smi, RAPL), never estimated."""
        return common.energy(self.values, "energy_j_per_sample")

    track_energy_j_per_sample.unit = "J/sample"
