"""MindSpore runner: builds a workload's mindspore.nn.Cell from neutral weights and runs it, in fp32 or
fp16 (Dense and Conv2d cells cast with ``to_float``, dynamic loss scaling), PyNative or graph mode
(``mindspore.jit``), with or without activation recompute (``Cell.recompute``); alone or as one rank of a
data-parallel group (DATA_PARALLEL mode, gradients averaged by ``nn.DistributedGradReducer``)."""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, amp, nn, ops

from metrics.memory import CPU_DEVICE_MEMORY
from metrics.parity import worst_repeat_difference
from runners.backends.mindspore_adam import TorchRuleAdam
from runners.devices import MINDSPORE_TARGETS, Device, parse_device
from runners.errors import AbsentError, PairbenchError, UnsupportedError, first_line
from runners.spec import RunConfig, WorkloadSpec, load_object, loss_mask

LOW_PRECISION = {"fp32": None, "fp16": ms.float16, "bf16": ms.bfloat16}
# The same dynamic loss scaling as torch.amp.GradScaler in the PyTorch runner.
LOSS_SCALE = {"scale_value": 2.0**16, "scale_factor": 2, "scale_window": 2000}


def _absent(dev: Device, exc: Exception) -> AbsentError:
    return AbsentError(f"device {dev} is absent for MindSpore ({first_line(str(exc))})")


def _set_device(dev: Device) -> str:
    """Select the device; returns MindSpore's name for it (its device target)."""
    target = MINDSPORE_TARGETS[dev.kind]
    try:
        ms.set_device(target, dev.index)
        if target == "CPU":
            # Asynchronous PyNative dispatch costs ~4-7 ms per kernel on a 2-core CPU in 2.10
            # (a 256x64x64 matmul: 7.5 ms async, 0.12 ms blocking); kernels run in order anyway.
            ms.runtime.launch_blocking()
    except (RuntimeError, ValueError) as exc:
        raise _absent(dev, exc) from None
    return target


def _probe(dev: Device) -> None:
    """Run one tiny kernel on the device: set_device alone succeeds even where the wheel lacks the backend, and the
    failure would only surface at the first real operation."""
    try:
        (Tensor(np.zeros(1, np.float32)) + 1).asnumpy()
    except (RuntimeError, ValueError) as exc:
        raise _absent(dev, exc) from None


def select_device(text: str) -> str:
    """Select the device ``text`` names and run one tiny kernel on it (a single process: no group to join first);
    returns MindSpore's name for it."""
    dev = parse_device(text)
    target = _set_device(dev)
    _probe(dev)
    return target


def synchronize(target: str) -> None:
    """Wait for the device target's queued work (CPU kernels are launched blocking: see _set_device)."""
    if target != "CPU":
        ms.runtime.synchronize()


def device_memory(target: str) -> dict:
    """The peak device memory MindSpore allocated on ``target``, or why there is no such figure."""
    if target == "CPU":
        return dict(CPU_DEVICE_MEMORY)
    return {"device_peak_mem_mb": ms.runtime.max_memory_allocated() / 2**20}


def _join_group(group: dict) -> tuple[int, int]:
    """Join the data-parallel ``group`` (RunConfig.distributed; msrun's environment gives the cluster and this
    process's rank): init() picks the collective backend from the device target (MCCL, NCCL or HCCL, as
    runners.devices.MINDSPORE_BACKENDS says), and DATA_PARALLEL mode averages gradients. Returns (rank, world)."""
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, world = get_rank(), get_group_size()
    if world != group["world"]:
        raise RuntimeError(f"the launcher started {world} processes, not {group['world']}")
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=world)
    return rank, world


def make_loss(spec: WorkloadSpec, data: dict | None = None):
    """The workload's loss as ``loss(out, y)`` on fp32 tensors, the same formulas as the PyTorch runner's."""
    array = loss_mask(spec, data)
    if array is None:
        return lambda out, y: ((out - y) ** 2).mean()
    mask = Tensor(array)
    if spec.loss == "masked_relative_l2":

        def masked_relative_l2(out, y):
            b = out.shape[0]
            diff = ((out - y) * mask).reshape(b, -1)
            ref = (y * mask).reshape(b, -1)
            return ((diff**2).sum(axis=1).sqrt() / (ref**2).sum(axis=1).sqrt()).mean()

        return masked_relative_l2
    return lambda out, y: ((out - y) ** 2 * mask).sum() / (mask.sum() * out.shape[0])


def check_cpu_bf16_matmul() -> None:
    """Refuse bf16 on CPU where MindSpore has no bfloat16 MatMul kernel (Dense and Conv2d rest on it), with
    MindSpore's own words; asked of the installed MindSpore each run, so a release that adds it runs bf16. MindSpore
    2.10 on an Intel Xeon with AMX-BF16 and AVX512-BF16 (2026-12-06): "Select CPU operator[MatMul] fail! Unsupported
    data type!"."""
    x = ms.Tensor(np.ones((2, 2), np.float32)).astype(ms.bfloat16)
    try:
        ops.matmul(x, x).asnumpy()
    except (TypeError, RuntimeError) as exc:
        said = first_line(str(exc)) or type(exc).__name__
        raise UnsupportedError(
            f"MindSpore {ms.__version__} has no bfloat16 Dense/Conv2d kernels on CPU ({said})"
        ) from None


def mindspore_net(spec: WorkloadSpec, weights: dict[str, np.ndarray], precision: str = "fp32") -> nn.Cell:
    """The workload's MindSpore network with ``weights`` set (every parameter, by name) and the mixed-precision
    policy shared with the PyTorch runner for ``precision``: Dense and Conv2d cells compute in low precision;
    LayerNorm, the Fourier filter, residual additions and the loss stay in fp32."""
    net = load_object(spec.models["mindspore"])(spec.model)
    params = list(net.get_parameters())
    names = [p.name for p in params]
    if sorted(names) != sorted(weights):
        missing = sorted(set(weights) ^ set(names))[0]
        raise PairbenchError(f"MindSpore model and weights disagree on parameter '{missing}'")
    for p in params:
        p.set_data(Tensor(weights[p.name]))
    dtype = LOW_PRECISION[precision]
    if dtype is not None:
        for _, cell in net.cells_and_names():
            if isinstance(cell, (nn.Dense, nn.Conv2d)):
                cell.to_float(dtype)
    return net


class MindSporeRunner:
    """The workload's loss; Adam with PyTorch's update rule (TorchRuleAdam). With ``run.distributed`` one rank of a
    data-parallel group: each step's gradients are averaged over the ranks before the update."""

    framework = "mindspore"

    def __init__(self, spec: WorkloadSpec, run: RunConfig):
        self.spec, self.run = spec, run
        ms.set_context(mode=ms.PYNATIVE_MODE)  # graph mode is applied per function with mindspore.jit
        if run.threads and not run.distributed:
            ms.set_context(runtime_num_threads=run.threads)
        dev = parse_device(run.device)
        self.target = _set_device(dev)
        self.rank, self.world = 0, 1
        if run.distributed:  # the group before any tensor exists: MindSpore requires it on Ascend
            if run.threads and self.target == "CPU":  # a rank's share of the cores, through the API MindSpore
                ms.device_context.cpu.op_tuning.threads_num(run.threads)  # names as runtime_num_threads' successor
            self.rank, self.world = _join_group(run.distributed)
        _probe(dev)
        if run.precision not in LOW_PRECISION:
            raise UnsupportedError(f"precision {run.precision} is not one of {', '.join(LOW_PRECISION)}")
        if run.precision == "bf16" and self.target == "CPU":
            check_cpu_bf16_matmul()
        self.loss_fn = make_loss(spec, run.data)

    def versions(self) -> dict[str, str]:
        return {
            "framework_version": ms.__version__,
            "device_name": self.target.lower() if self.target == "CPU" else self.target,
            "threads_used": str(self.run.threads) if self.run.threads else "framework default",
            "execution_mode": "graph (jit)" if self.run.mode == "compiled" else "pynative",
        }

    def build(self, weights: dict[str, np.ndarray]) -> None:
        net = mindspore_net(self.spec, weights, self.run.precision)
        if self.run.recompute:
            net.recompute_blocks()
        self.net = net
        self.params = net.trainable_params()
        hp = self.run.hyper_parameters
        self.opt = TorchRuleAdam(self.params, lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])
        self.scaler = amp.DynamicLossScaler(**LOSS_SCALE) if self.run.precision == "fp16" else None
        # Data parallel: the gradients all-reduced and averaged over the ranks (as DATA_PARALLEL's gradients_mean).
        group = self.run.distributed
        self.reducer = nn.DistributedGradReducer(self.params, mean=True, degree=self.world) if group else None
        self.last_grads = None
        grad_fn = ms.value_and_grad(self._scaled_loss, None, self.params)
        compiled = self.run.mode == "compiled"
        self.grad_fn = ms.jit(grad_fn) if compiled else grad_fn
        self.forward_fn = ms.jit(self._forward) if compiled else self._forward
        if compiled and self.run.task != "forecast":  # a forecast takes no gradient
            self._check_compiled_gradients()

    def _check_compiled_gradients(self) -> None:
        """Refuse a compiled step whose gradients change between calls with the same inputs.

        MindSpore 2.10's graph mode on CPU returns the right Fourier-filter gradients on the first
        call and different ones on every later call (measured: relative differences of order 1 in
        blocks.*.filter.*), which would silently train a different model. Two calls settle it. The FFT path
        shows it (scripts/ms_graph_fft_grad_repro.py: a slice of the rfft2 spectrum padded back); the DFT path
        (``spectral_transform="dft"``) does not.
        """
        cfg = self.spec.model
        rng = np.random.default_rng(0)
        inputs = [
            Tensor(rng.standard_normal((1, cfg.in_chans, *cfg.img_size), dtype=np.float32)),
            Tensor(rng.standard_normal((1, cfg.out_chans, *cfg.img_size), dtype=np.float32)),
        ]
        if self.run.objective == "masked":  # the masked step is its own graph: check that one
            inputs.append(Tensor(cfg.random_token_mask(1, rng)))
        first = [g.asnumpy() for g in self.grad_fn(*inputs)[1]]
        second = [g.asnumpy() for g in self.grad_fn(*inputs)[1]]
        worst, where = worst_repeat_difference(first, second, [p.name for p in self.params])
        if not worst <= 1e-5:
            raise UnsupportedError(
                f"MindSpore {ms.__version__} graph mode on {self.target} gives different gradients for the same "
                f"inputs on repeated calls (worst relative difference {worst:.2g}, at {where}); compiled training "
                "would be wrong, so it is refused (the DFT spectral path, --spectral dft, compiles consistently)"
            )

    def _forward(self, x):
        return self.net(x).astype(ms.float32)

    def _loss(self, x, y, token_mask=None):
        out = self.net(x) if token_mask is None else self.net(x, token_mask)
        return self.loss_fn(out.astype(ms.float32), y)

    def _scaled_loss(self, x, y, token_mask=None):
        loss = self._loss(x, y, token_mask)
        return loss if self.scaler is None else self.scaler.scale(loss)

    def put(self, array: np.ndarray) -> Tensor:
        return Tensor(array)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_fn(x)

    def fetch(self, tensor: Tensor) -> np.ndarray:
        return tensor.astype(ms.float32).asnumpy()

    def _loss_and_unscaled_grads(self, x, y, token_mask=None):
        # A forecast step is called without the mask argument, so that its graph is the one it always was.
        loss, grads = self.grad_fn(x, y) if token_mask is None else self.grad_fn(x, y, token_mask)
        if self.reducer is not None:
            grads = self.reducer(grads)
        if self.scaler is None:
            return float(loss.asnumpy()), grads, True
        grads = self.scaler.unscale(grads)
        finite = amp.all_finite(grads)
        self.scaler.adjust(finite)
        return float(self.scaler.unscale(loss).asnumpy()), grads, bool(finite.asnumpy())

    def loss_and_grads(self, x, y, token_mask=None) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads, _ = self._loss_and_unscaled_grads(x, y, token_mask)
        return loss, {p.name: g.asnumpy() for p, g in zip(self.params, grads, strict=True)}

    def grads(self) -> dict[str, np.ndarray]:
        """The last train_step's gradients, averaged over the ranks (kept in data parallel only: elsewhere they
        would hold device memory between steps)."""
        if self.last_grads is None:
            raise RuntimeError("the gradients of a training step are kept in data-parallel runs only")
        return {p.name: g.asnumpy() for p, g in zip(self.params, self.last_grads, strict=True)}

    def train_step(self, x, y, token_mask=None) -> float:
        loss, grads, finite = self._loss_and_unscaled_grads(x, y, token_mask)
        if self.reducer is not None:
            self.last_grads = grads
        if finite:  # an overflowed fp16 step is skipped, as GradScaler skips it
            self.opt(grads)
        return loss

    def synchronize(self) -> None:
        synchronize(self.target)

    def device_memory(self) -> dict:
        return device_memory(self.target)

    def state(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for p in self.net.get_parameters()}

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        """The mean of ``values`` over the data-parallel group's ranks (an all-reduce in float32)."""
        total = ops.AllReduce()(Tensor(np.asarray(values, np.float32))).asnumpy()
        return [float(v) / self.world for v in total]

    def close(self) -> None:
        """Leave the data-parallel group, if in one."""
        if self.run.distributed:
            from mindspore.communication import release

            release()
