"""MindSpore runner: builds a workload's mindspore.nn.Cell from neutral weights and runs it."""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor

from runners.devices import parse_device
from runners.mindspore_optim import TorchRuleAdam
from runners.registry import load_object
from runners.spec import PairbenchError, RunConfig, WorkloadSpec

_TARGETS = {"cpu": "CPU", "cuda": "GPU", "ascend": "Ascend"}


def _set_device(text: str) -> str:
    """Select the device and run one tiny kernel on it: set_device alone succeeds even where the
    wheel lacks the backend, and the failure would only surface at the first real operation."""
    dev = parse_device(text)
    target = _TARGETS[dev.kind]
    try:
        ms.set_device(target, dev.index)
        if target == "CPU":
            # Asynchronous PyNative dispatch costs ~4-7 ms per kernel on a 2-core CPU in 2.10
            # (a 256x64x64 matmul: 7.5 ms async, 0.12 ms blocking); kernels run in order anyway.
            ms.runtime.launch_blocking()
        (Tensor(np.zeros(1, np.float32)) + 1).asnumpy()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise PairbenchError(f"device {dev} is absent for MindSpore ({first})") from None
    return target


class MindSporeRunner:
    """PyNative MindSpore, fp32; MSE loss; Adam with PyTorch's update rule (TorchRuleAdam)."""

    framework = "mindspore"

    def __init__(self, spec: WorkloadSpec, run: RunConfig):
        self.spec, self.run = spec, run
        ms.set_context(mode=ms.PYNATIVE_MODE)
        self.target = _set_device(run.device)
        self.model_cls = load_object(spec.models[self.framework])

    def versions(self) -> dict[str, str]:
        return {
            "framework_version": ms.__version__,
            "device_name": self.target.lower() if self.target == "CPU" else self.target,
            "threads": "framework default",
            "execution_mode": "pynative",
        }

    def build(self, weights: dict[str, np.ndarray]) -> None:
        net = self.model_cls(self.spec.model)
        params = list(net.get_parameters())
        names = [p.name for p in params]
        if sorted(names) != sorted(weights):
            missing = sorted(set(weights) ^ set(names))[0]
            raise PairbenchError(f"MindSpore model and weights disagree on parameter '{missing}'")
        for p in params:
            p.set_data(Tensor(weights[p.name]))
        self.net = net
        self.params = net.trainable_params()
        hp = self.run.hyper_parameters
        self.opt = TorchRuleAdam(self.params, lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])
        self.grad_fn = ms.value_and_grad(self._loss, None, self.params)

    def put(self, array: np.ndarray) -> Tensor:
        return Tensor(array)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def fetch(self, tensor: Tensor) -> np.ndarray:
        return tensor.asnumpy()

    def _loss(self, x: Tensor, y: Tensor) -> Tensor:
        return ((self.net(x) - y) ** 2).mean()

    def loss_and_grads(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads = self.grad_fn(x, y)
        return float(loss.asnumpy()), {p.name: g.asnumpy() for p, g in zip(self.params, grads, strict=True)}

    def train_step(self, x, y) -> float:
        loss, grads = self.grad_fn(x, y)
        self.opt(grads)
        return float(loss.asnumpy())

    def synchronize(self) -> None:
        if self.target != "CPU":  # CPU kernels are launched blocking (see _set_device)
            ms.runtime.synchronize()

    def state(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for p in self.net.get_parameters()}
