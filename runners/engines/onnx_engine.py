"""The ONNX Runtime engine: the source framework's model exported to ONNX (PyTorch: ``torch.onnx.export`` with the
dynamo exporter; MindSpore: ``mindspore.onnx.export``), written into the run's folder, and run by an
``onnxruntime.InferenceSession`` with the execution provider of the device (runners.engines.spec). fp32 as exported;
fp16 by onnxruntime's own converter (``onnxruntime.transformers.float16``, inputs and outputs kept fp32); bf16 is
refused (that converter makes fp16 only)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from runners.engines.base import EngineRunner, described, example_input, export_refused, said
from runners.engines.spec import ORT_PROVIDERS
from runners.errors import UnsupportedError

# What OrtValue calls each device kind's memory.
ORT_DEVICES = {"cpu": "cpu", "cuda": "cuda", "ascend": "cann"}
FP16_CONVERSION = (
    "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True): weights and activations fp16, "
    "inputs and outputs fp32"
)


class OnnxRuntimeEngine(EngineRunner):
    """An ONNX file in an ONNX Runtime session; on CPU the arrays stay NumPy, elsewhere they live on the device
    (OrtValue, bound with IOBinding) so that a forecast fed back stays there."""

    suffix = ".onnx"
    runtime = "onnxruntime"

    def __init__(self, spec, run, engine, prefix):
        super().__init__(spec, run, engine, prefix)
        if run.precision not in ("fp32", "fp16"):
            raise UnsupportedError(
                f"engine {self.engine.label} has no {run.precision} graph: onnxruntime's converter "
                "(onnxruntime.transformers.float16) makes fp16 only"
            )
        self.provider = ORT_PROVIDERS[self.engine.provider]
        self.ort_device = ORT_DEVICES[self.device.kind]

    # --- export ---------------------------------------------------------------------------------------------
    def export(self, weights) -> dict:
        exporter = self._export_torch if self.engine.source == "torch" else self._export_mindspore
        facts = exporter(weights)
        model = onnx.load(str(self.path))
        if self.run.precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(model, keep_io_types=True)
            onnx.save(model, str(self.path))
            facts["engine_conversion"] = FP16_CONVERSION
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        return {**facts, "engine_opset": opset, "engine_onnx_version": onnx.__version__}

    def _export_torch(self, weights) -> dict:
        import torch

        from runners.backends.torch_backend import torch_model

        net = torch_model(self.spec, weights).eval()
        x = torch.from_numpy(example_input(self.spec, self.run))
        try:
            with torch.no_grad():
                torch.onnx.export(net, (x,), str(self.path), dynamo=True, external_data=False, verbose=False)
        except Exception as exc:
            raise export_refused("PyTorch", torch.__version__, self.spec, self.engine, "ONNX", exc) from None
        self.framework_version = torch.__version__
        return {"engine_exporter": "torch.onnx.export (dynamo=True)"}

    def _export_mindspore(self, weights) -> dict:
        import mindspore as ms
        import mindspore.onnx

        from runners.backends.mindspore_backend import mindspore_net

        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")  # the export is the same on every device; the session runs it on the engine's
        net = mindspore_net(self.spec, weights)
        net.set_train(False)
        x = ms.Tensor(example_input(self.spec, self.run))
        try:
            mindspore.onnx.export(net, x, file_name=str(self.path))
        except Exception as exc:
            raise export_refused("MindSpore", ms.__version__, self.spec, self.engine, "ONNX", exc) from None
        self.framework_version = ms.__version__
        return {"engine_exporter": "mindspore.onnx.export"}

    # --- session -------------------------------------------------------------------------------------------
    def open(self) -> dict:
        available = ort.get_available_providers()
        if self.provider not in available:
            raise UnsupportedError(
                f"ONNX Runtime {ort.__version__} here has no {self.provider} (it has {', '.join(available)}; "
                "docs/deployment.md names the package for each device)"
            )
        options = ort.SessionOptions()
        if self.run.threads:
            options.intra_op_num_threads = self.run.threads
        provider = self.provider if self.device.kind == "cpu" else (self.provider, {"device_id": self.device.index})
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=[provider])
        except Exception as exc:
            raise UnsupportedError(
                f"ONNX Runtime {ort.__version__} cannot open {described(self.spec, self.engine)} with "
                f"{self.provider}: {said(exc)}"
            ) from None
        used = self.session.get_providers()
        if self.provider not in used:  # ONNX Runtime falls back to the CPU where a device provider fails to start
            raise UnsupportedError(
                f"ONNX Runtime {ort.__version__} opened the graph with {', '.join(used)}, not {self.provider}: the "
                f"provider did not start on {self.device} (its libraries, driver or device), so nothing ran there"
            )
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.threads = options.intra_op_num_threads
        return {
            "engine_provider_requested": self.provider,
            "engine_providers_used": self.session.get_providers(),
            "engine_runtime_version": ort.__version__,
        }

    def versions(self) -> dict[str, str]:
        return {
            "framework_version": self.framework_version,
            "device_name": self.device_name(),
            "threads_used": str(self.threads) if self.threads else "onnxruntime default",
            "execution_mode": f"onnxruntime ({self.session.get_providers()[0]})",
        }

    # --- the runner interface ---------------------------------------------------------------------------------
    def put(self, array: np.ndarray):
        if self.device.kind == "cpu":
            return np.ascontiguousarray(array, dtype=np.float32)
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, np.float32), self.ort_device,
                                                self.device.index)  # fmt: skip

    def forward(self, x):
        if self.device.kind == "cpu":
            return self.session.run([self.output_name], {self.input_name: x})[0]
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x)
        binding.bind_output(self.output_name, self.ort_device, self.device.index)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def fetch(self, value) -> np.ndarray:
        return value if isinstance(value, np.ndarray) else value.numpy()
