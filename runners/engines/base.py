"""What every exported-graph engine shares: the runner interface the forecast task calls (runners.execution.rollout:
``build``, ``put``, ``forward``, ``fetch``, ``synchronize``, ``device_memory``, ``versions``), the export into the
run's folder timed, the file's size and digest, the session timed, and the facts a record keeps (``engine_*``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from metrics.memory import CPU_DEVICE_MEMORY
from runners.data.files import file_sha256
from runners.devices import parse_device
from runners.engines.spec import EngineSpec
from runners.errors import UnsupportedError, first_line
from runners.spec import RunConfig, WorkloadSpec


def example_input(spec: WorkloadSpec, run: RunConfig) -> np.ndarray:
    """An input of the forecast's shape (batch, in_chans, lat, lon), float32: what the graph is traced with."""
    return np.zeros((run.batch_size, spec.model.in_chans, *spec.model.img_size), np.float32)


def described(spec: WorkloadSpec, engine: EngineSpec) -> str:
    """The workload and its formulation in words, for a refusal: ``fourcastnet-tiny (spectral fft, shrink relu)``."""
    return f"{spec.name} (spectral {engine.spectral or 'fft'}, shrink {engine.shrink or 'softshrink'})"


def said(exc: BaseException) -> str:
    """What an exception says, its first line (or its type where it says nothing)."""
    return first_line(str(exc)) or type(exc).__name__


def export_refused(framework: str, version: str, spec: WorkloadSpec, engine: EngineSpec, fmt: str, exc) -> Exception:
    """The refusal of an export that failed, in the exporter's own words (its first line)."""
    return UnsupportedError(f"{framework} {version} cannot export {described(spec, engine)} to {fmt}: {said(exc)}")


class EngineRunner:
    """An exported graph as a forecast runner. Subclasses set ``suffix`` and ``runtime`` and implement
    :meth:`export` (write ``self.path``, return facts), :meth:`open` (load it, return facts), ``put``, ``forward``
    and ``fetch``; an export or a session that fails raises UnsupportedError with the tool's own first line."""

    suffix = ""
    runtime = ""

    def __init__(self, spec: WorkloadSpec, run: RunConfig, engine: EngineSpec, prefix: Path):
        if run.task != "forecast":
            raise UnsupportedError(f"engine {engine.name} runs forecasts only, not the {run.task} task")
        if run.mode != "eager":
            raise UnsupportedError(f"engine {engine.name} runs its exported graph as it is: mode {run.mode} is the "
                                   "frameworks' own (give mode eager)")  # fmt: skip
        self.spec, self.run = spec, run
        self.device = parse_device(run.device)
        self.engine = engine.resolve(spec.model, self.device.kind)
        self.framework = self.engine.source
        self.path = Path(prefix).with_name(Path(prefix).name + self.suffix)
        self._facts: dict = {}
        self.framework_version = "unknown"  # the source framework's, set by export

    # --- building --------------------------------------------------------------------------------------------
    def build(self, weights: dict[str, np.ndarray]) -> None:
        """Export the source framework's model with ``weights`` to ``self.path``, then open it, each timed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # an earlier attempt's file is never timed or digested as this one's
        t0 = time.perf_counter()
        exported = self.export(weights)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        opened = self.open()
        session_s = time.perf_counter() - t0
        e = self.engine
        self._facts = {
            "engine": e.label,
            "engine_source": e.source,
            "engine_spectral": e.spectral,
            "engine_shrink": e.shrink,
            "engine_export_s": export_s,
            "engine_file": self.path.name,
            "engine_bytes": self.path.stat().st_size,
            "engine_sha256": file_sha256(self.path),
            "engine_session_s": session_s,
            "engine_runtime": self.runtime,
            **exported,
            **opened,
        }

    def export(self, weights: dict[str, np.ndarray]) -> dict:
        raise NotImplementedError

    def open(self) -> dict:
        raise NotImplementedError

    def facts(self) -> dict:
        """What the worker adds to its result: the engine's label, source, formulation, export and session."""
        return dict(self._facts)

    # --- the runner interface the forecast task calls -------------------------------------------------------------
    def synchronize(self) -> None:
        """Each call returns with its output computed (the runtimes' own calls are synchronous)."""

    def device_memory(self) -> dict:
        if self.device.kind == "cpu":
            return dict(CPU_DEVICE_MEMORY)
        return {"device_peak_mem_mb": None, "device_peak_mem_reason": f"{self.runtime} reports no peak device memory"}

    def device_name(self) -> str:
        """``cpu`` (the record names the CPU), else the accelerator's name as its driver gives it."""
        if self.device.kind == "cpu":
            return "cpu"
        from metrics.device.machine import accelerators

        found = [a for a in accelerators(self.device.kind) if not a.get("absent")]
        return found[self.device.index]["name"] if self.device.index < len(found) else str(self.device)
