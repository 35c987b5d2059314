"""PyTorch runner: builds a workload's torch.nn model from neutral weights and runs it, in fp32, bf16 or
fp16 (autocast, with GradScaler's dynamic loss scaling for fp16), eager or torch.compile, with or
without activation recompute; alone or as one rank of a data-parallel group (DistributedDataParallel)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from metrics.memory import CPU_DEVICE_MEMORY
from runners.backends.torch_compiled import CompiledModel
from runners.devices import parse_device
from runners.errors import AbsentError, UnsupportedError
from runners.spec import RunConfig, WorkloadSpec, load_object, loss_mask

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Dynamic loss scaling for fp16, the same settings as MindSpore's DynamicLossScaler in its runner.
LOSS_SCALE = {"init_scale": 2.0**16, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}


def _torch_device(text: str) -> torch.device:
    dev = parse_device(text)
    if dev.kind == "cpu":
        return torch.device("cpu")
    if dev.kind == "cuda":
        if not torch.cuda.is_available():
            raise AbsentError(f"device {dev} is absent: this PyTorch build sees no CUDA GPU")
        if dev.index >= torch.cuda.device_count():
            raise AbsentError(f"device {dev} is absent: {torch.cuda.device_count()} CUDA GPU(s) visible")
        return torch.device("cuda", dev.index)
    try:
        import torch_npu  # noqa: F401  (registers the "npu" device with PyTorch)
    except ImportError:
        raise AbsentError(f"device {dev} is absent for PyTorch: torch_npu is not installed") from None
    if not torch.npu.is_available() or dev.index >= torch.npu.device_count():
        raise AbsentError(f"device {dev} is absent: torch_npu sees no such Ascend NPU")
    return torch.device("npu", dev.index)


def masked_relative_l2(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over samples of |mask * (out - y)| / |mask * y| (L2 norms over channels and grid)."""
    b = out.shape[0]
    diff = ((out - y) * mask).reshape(b, -1)
    ref = (y * mask).reshape(b, -1)
    return ((diff**2).sum(dim=1).sqrt() / (ref**2).sum(dim=1).sqrt()).mean()


def masked_mse(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean squared error over the cells where ``mask`` is 1 (cells the data has)."""
    return ((out - y) ** 2 * mask).sum() / (mask.sum() * out.shape[0])


def make_loss(spec: WorkloadSpec, device: torch.device, data: dict | None = None):
    """The workload's loss as ``loss(out, y)``, in fp32 (``spec.loss``; see runners.spec.LOSSES), over the cells
    of runners.spec.loss_mask."""
    mask = loss_mask(spec, data)
    if mask is None:
        return F.mse_loss
    mask = torch.from_numpy(mask).to(device)
    if spec.loss == "masked_relative_l2":
        return lambda out, y: masked_relative_l2(out, y, mask)
    return lambda out, y: masked_mse(out, y, mask)


def _check_group_device(text: str, backend: str) -> None:
    """A rank's accelerator must exist: torchrun gives each process of a node its own."""
    dev = parse_device(text)
    if dev.kind == "cuda" and torch.cuda.device_count() <= dev.index:
        raise AbsentError(
            f"{backend.upper()} data parallel needs {dev}; torch {torch.__version__} sees "
            f"{torch.cuda.device_count()} CUDA GPU(s)"
        )


def _join_group(group: dict, device: torch.device) -> tuple[int, int]:
    """Join the data-parallel group ``group`` (RunConfig.distributed: its collective backend, gloo, NCCL or HCCL,
    and its size); torchrun's environment gives the rendezvous and this process's rank. Returns (rank, world)."""
    if device.type == "cpu":
        dist.init_process_group(group["backend"])
    else:
        getattr(torch, device.type).set_device(device)  # torch.cuda or torch.npu
        dist.init_process_group(group["backend"], device_id=device)
    if dist.get_world_size() != group["world"]:
        raise RuntimeError(f"the launcher started {dist.get_world_size()} processes, not {group['world']}")
    return dist.get_rank(), dist.get_world_size()


def torch_model(spec: WorkloadSpec, weights: dict[str, np.ndarray]) -> torch.nn.Module:
    """The workload's PyTorch model with ``weights`` loaded (every parameter, strictly), on the CPU."""
    net = load_object(spec.models["torch"])(spec.model)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return net


class TorchRunner:
    """The workload's loss and torch.optim.Adam; the mixed-precision policy is the model's own (see README). With
    ``run.distributed`` one rank of a data-parallel group: the model in DistributedDataParallel, which averages the
    gradients over the ranks during backward."""

    framework = "torch"

    def __init__(self, spec: WorkloadSpec, run: RunConfig):
        self.spec, self.run = spec, run
        if run.threads:
            torch.set_num_threads(run.threads)
        if run.distributed:
            _check_group_device(run.device, run.distributed["backend"])
        self.device = _torch_device(run.device)
        if run.precision not in AMP_DTYPES:
            raise UnsupportedError(f"precision {run.precision} is not one of {', '.join(AMP_DTYPES)}")
        self.amp_dtype = AMP_DTYPES[run.precision]
        self.loss_fn = make_loss(spec, self.device, run.data)
        self.compiled = CompiledModel(None, self.device, enabled=False)
        self.rank, self.world = _join_group(run.distributed, self.device) if run.distributed else (0, 1)

    def versions(self) -> dict[str, str]:
        name = "cpu"
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        elif self.device.type == "npu":
            name = torch.npu.get_device_name(self.device)
        return {
            "framework_version": torch.__version__,
            "device_name": name,
            "cuda_runtime": torch.version.cuda,
            "threads_used": str(torch.get_num_threads()),
            "execution_mode": "torch.compile" if self.run.mode == "compiled" else "eager",
            **self.compiled.facts(),
        }

    def build(self, weights: dict[str, np.ndarray]) -> None:
        net = torch_model(self.spec, weights)
        net.recompute = self.run.recompute
        self.net = net.to(self.device)
        model = self.net
        if self.run.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = None if self.device.type == "cpu" else [self.device.index]
            # static_graph: the reference model owns a final LayerNorm that forward never applies (see README), so
            # some parameters get no gradient; DDP must know the used set is the same every step.
            model = DistributedDataParallel(self.net, device_ids=ids, static_graph=True)
        compiled = self.run.mode == "compiled"
        self.compiled = CompiledModel(model, self.device, enabled=compiled, check=self.run.task != "diagnose")
        self.model = self.compiled
        hp = self.run.hyper_parameters
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])
        self.scaler = torch.amp.GradScaler(self.device.type, **LOSS_SCALE) if self.run.precision == "fp16" else None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def put(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            return self.model(x).float()

    def fetch(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().float().cpu().numpy()

    def _loss(self, x: torch.Tensor, y: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        def loss_of(model) -> torch.Tensor:
            with self._autocast():
                out = model(x) if token_mask is None else model(x, token_mask)
            return self.loss_fn(out.float(), y)

        loss = loss_of(self.model)
        self.compiled.check_loss(loss, lambda: loss_of(self.net))
        return loss

    def loss_and_grads(self, x, y, token_mask=None) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and the gradient of every parameter the loss reaches (one it does not reach has none and is
        left out, never given zeros); also measures the bytes autograd saves for backward
        (distinct storages), the activation memory that recompute trades for time."""
        self.net.zero_grad(set_to_none=True)
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self._loss(x, y, token_mask)
        self.activation_memory = {"saved_activations_mb": sum(storages.values()) / 2**20}
        loss.backward()
        grads = self.grads()
        self.net.zero_grad(set_to_none=True)
        return float(loss.item()), grads

    def grads(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward (after train_step: the step's, averaged over the ranks in data
        parallel), of every parameter it reached."""
        return {n: p.grad.detach().cpu().numpy() for n, p in self.net.named_parameters() if p.grad is not None}

    def train_step(self, x, y, token_mask=None) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss(x, y, token_mask)
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        return float(loss.item())

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "npu":
            torch.npu.synchronize(self.device)

    def device_memory(self) -> dict:
        """Peak device memory allocated by this process, or why there is no such figure."""
        if self.device.type == "cuda":
            return {"device_peak_mem_mb": torch.cuda.max_memory_allocated(self.device) / 2**20}
        if self.device.type == "npu":
            return {"device_peak_mem_mb": torch.npu.max_memory_allocated(self.device) / 2**20}
        return dict(CPU_DEVICE_MEMORY)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        """The mean of ``values`` over the data-parallel group's ranks (an all-reduce in float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).cpu().tolist()

    def close(self) -> None:
        """Leave the data-parallel group, if in one."""
        if self.run.distributed:
            dist.destroy_process_group()
