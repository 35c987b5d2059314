"""PyTorch runner: builds a workload's torch.nn model from neutral weights and runs it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from runners.devices import parse_device
from runners.registry import load_object
from runners.spec import PairbenchError, RunConfig, WorkloadSpec


def _torch_device(text: str) -> torch.device:
    dev = parse_device(text)
    if dev.kind == "cpu":
        return torch.device("cpu")
    if dev.kind == "cuda":
        if not torch.cuda.is_available():
            raise PairbenchError(f"device {dev} is absent: this PyTorch build sees no CUDA GPU")
        if dev.index >= torch.cuda.device_count():
            raise PairbenchError(f"device {dev} is absent: {torch.cuda.device_count()} CUDA GPU(s) visible")
        return torch.device("cuda", dev.index)
    raise PairbenchError(f"device {dev} is not supported by the PyTorch runner yet")


class TorchRunner:
    """Eager PyTorch, fp32; MSE loss; torch.optim.Adam."""

    framework = "torch"

    def __init__(self, spec: WorkloadSpec, run: RunConfig):
        self.spec, self.run = spec, run
        self.device = _torch_device(run.device)
        self.model_cls = load_object(spec.models[self.framework])

    def versions(self) -> dict[str, str]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "framework_version": torch.__version__,
            "device_name": name,
            "threads": str(torch.get_num_threads()),
            "execution_mode": "eager",
        }

    def build(self, weights: dict[str, np.ndarray]) -> None:
        net = self.model_cls(self.spec.model)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
        self.net = net.to(self.device)
        hp = self.run.hyper_parameters
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])

    def put(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(x)

    def fetch(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.net(x), y)

    def loss_and_grads(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        self.net.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        loss.backward()
        grads = {
            n: (p.grad.detach().cpu().numpy() if p.grad is not None else np.zeros(p.shape, np.float32))
            for n, p in self.net.named_parameters()
        }
        self.net.zero_grad(set_to_none=True)
        return float(loss.item()), grads

    def train_step(self, x, y) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
