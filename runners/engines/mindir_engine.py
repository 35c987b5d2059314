"""The MindIR engine: the MindSpore model exported with ``mindspore.export(..., file_format="MINDIR")`` into the run's
folder, loaded back with ``mindspore.load`` and run as an ``nn.GraphCell`` on the device (CPU, GPU or Ascend), in
fp32 or the MindSpore runner's low-precision policy. Whether MindSpore Lite is importable is recorded
(``engine_lite``), never skipped silently."""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from runners.backends.mindspore_backend import (
    LOW_PRECISION,
    check_cpu_bf16_matmul,
    device_memory,
    mindspore_net,
    select_device,
    synchronize,
)
from runners.engines.base import EngineRunner, example_input, export_refused, said
from runners.errors import UnsupportedError


def lite_status() -> str:
    """Whether MindSpore Lite (``mindspore_lite``) is importable here, in words."""
    try:
        import mindspore_lite
    except ImportError as exc:
        return f"unavailable: {said(exc)}"
    version = getattr(mindspore_lite, "__version__", "of unknown version")
    return f"installed ({version}), not used: the graph runs through mindspore.nn.GraphCell"


class MindIREngine(EngineRunner):
    """A MindIR file in MindSpore's graph runtime (``nn.GraphCell``)."""

    suffix = ".mindir"
    runtime = "mindspore"

    def __init__(self, spec, run, engine, prefix):
        super().__init__(spec, run, engine, prefix)
        if run.precision not in LOW_PRECISION:
            raise UnsupportedError(f"precision {run.precision} is not one of {', '.join(LOW_PRECISION)}")
        ms.set_context(mode=ms.GRAPH_MODE)
        if run.threads:
            ms.set_context(runtime_num_threads=run.threads)
        self.target = select_device(run.device)
        if run.precision == "bf16" and self.target == "CPU":
            check_cpu_bf16_matmul()
        self.framework_version = ms.__version__

    def export(self, weights) -> dict:
        net = mindspore_net(self.spec, weights, self.run.precision)
        net.set_train(False)
        x = Tensor(example_input(self.spec, self.run))
        try:
            ms.export(net, x, file_name=str(self.path), file_format="MINDIR")
        except Exception as exc:
            raise export_refused("MindSpore", ms.__version__, self.spec, self.engine, "MindIR", exc) from None
        return {"engine_exporter": 'mindspore.export (file_format="MINDIR")', "engine_lite": lite_status()}

    def open(self) -> dict:
        try:
            self.cell = nn.GraphCell(ms.load(str(self.path)))
        except Exception as exc:
            raise UnsupportedError(
                f"MindSpore {ms.__version__} cannot load {self.path.name} on {self.target}: {said(exc)}"
            ) from None
        return {"engine_device_target": self.target, "engine_runtime_version": ms.__version__}

    def versions(self) -> dict[str, str]:
        return {
            "framework_version": self.framework_version,
            "device_name": "cpu" if self.target == "CPU" else self.device_name(),
            "threads_used": str(self.run.threads) if self.run.threads else "framework default",
            "execution_mode": f"mindir (mindspore.nn.GraphCell on {self.target})",
        }

    def put(self, array: np.ndarray) -> Tensor:
        return Tensor(array)

    def forward(self, x: Tensor) -> Tensor:
        return self.cell(x)

    def fetch(self, tensor: Tensor) -> np.ndarray:
        return tensor.astype(ms.float32).asnumpy()

    def synchronize(self) -> None:
        synchronize(self.target)

    def device_memory(self) -> dict:
        return device_memory(self.target)
