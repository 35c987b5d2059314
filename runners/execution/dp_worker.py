"""One rank of a data-parallel training run, under torchrun or msrun:
``python -m runners.execution.dp_worker REQUEST.json``."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from runners.data.synthetic import synthetic_batch
from runners.devices import MINDSPORE_TARGETS, TORCH_BACKENDS, parse_device
from runners.execution.lifeline import watch_parent
from runners.spec import load_object
from runners.weights.canonical import load_weights, weights_digest
from runners.workloads.registry import get_workload

CRASH_RANK_ENV = "PAIRBENCH_DP_CRASH_RANK"  # test hook: this rank exits abruptly ...
CRASH_STEP_ENV = "PAIRBENCH_DP_CRASH_STEP"  # ... at the start of this training step (default 1)
CRASH_EXIT_CODE = 17
PROGRESS_S = 5.0  # a rank logs the step it is on at most this often


class BackendUnavailable(RuntimeError):
    """The device or collective backend asked for does not exist on this machine."""


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _maybe_crash(rank: int, step: int) -> None:
    """Exit without a result, as a segfault or an OOM kill would, when the test hook names this rank and step."""
    if os.environ.get(CRASH_RANK_ENV) == str(rank) and os.environ.get(CRASH_STEP_ENV, "1").strip() == str(step):
        print(f"pairbench: injected crash of rank {rank} at step {step}", file=sys.stderr, flush=True)
        os._exit(CRASH_EXIT_CODE)


def shard(req: dict, step: int, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank ``rank``'s equal slice of global batch ``step``; every rank draws the same global batch."""
    cfg = get_workload(req["workload"]).model
    b = req["global_batch"]
    x, y = synthetic_batch((b, cfg.in_chans, *cfg.img_size), cfg.out_chans, req["seed"], step)
    lo, hi = rank * b // world, (rank + 1) * b // world
    return np.ascontiguousarray(x[lo:hi]), np.ascontiguousarray(y[lo:hi])


class TorchRank:
    """DistributedDataParallel over torch.distributed (gloo on CPU, NCCL on CUDA); the workload's loss;
    torch.optim.Adam."""

    def __init__(self, req: dict):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        dev = parse_device(req["device"])
        if dev.kind not in TORCH_BACKENDS:
            raise RuntimeError(f"torch data parallel supports cpu and cuda, not {dev.kind}")
        self.backend = TORCH_BACKENDS[dev.kind]
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if dev.kind == "cuda":
            if torch.cuda.device_count() <= dev.index + local:
                raise BackendUnavailable(
                    f"NCCL data parallel needs cuda:{dev.index + local}; torch {torch.__version__} sees "
                    f"{torch.cuda.device_count()} CUDA GPU(s)"
                )
            self.device = torch.device("cuda", dev.index + local)
            torch.cuda.set_device(self.device)
            dist.init_process_group(self.backend, device_id=self.device)
        else:
            self.device = torch.device("cpu")
            dist.init_process_group(self.backend)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if req.get("threads"):
            torch.set_num_threads(req["threads"])
        self.version = torch.__version__

    def build(self, spec, weights: dict[str, np.ndarray], hp: dict) -> None:
        torch = self.torch
        from torch.nn.parallel import DistributedDataParallel

        from runners.backends.torch_backend import make_loss

        net = load_object(spec.models["torch"])(spec.model)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
        net = net.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # static_graph: the reference model owns a final LayerNorm that forward never applies (see README), so
        # some parameters get no gradient; DDP must know the used set is the same every step.
        self.ddp = DistributedDataParallel(net, device_ids=ids, static_graph=True)
        self.opt = torch.optim.Adam(net.parameters(), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])
        self.net = net
        self.loss_fn = make_loss(spec, self.device)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One Adam step on the local shard; DDP averages the gradients over ranks during backward."""
        xt, yt = self.torch.from_numpy(x).to(self.device), self.torch.from_numpy(y).to(self.device)
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.ddp(xt), yt)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def last_grads(self) -> dict[str, np.ndarray]:
        """The averaged gradients of the last step (they stay in .grad until the next step clears them)."""
        named = self.net.named_parameters()
        return {n: p.grad.detach().cpu().numpy() for n, p in named if p.grad is not None}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        t = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return (t / self.world).cpu().tolist()

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def threads(self) -> str:
        return str(self.torch.get_num_threads())

    def close(self) -> None:
        self.dist.destroy_process_group()


class MindSporeRank:
    """MindSpore PyNative in DATA_PARALLEL mode (MCCL on CPU, NCCL on GPU, HCCL on Ascend): gradients averaged by
    nn.DistributedGradReducer, Adam with torch's update rule (TorchRuleAdam)."""

    def __init__(self, req: dict):
        import mindspore as ms
        from mindspore.communication import get_group_size, get_rank, init

        self.ms = ms
        dev = parse_device(req["device"])
        self.threads_num = req.get("threads") if dev.kind == "cpu" else None
        self.target = MINDSPORE_TARGETS[dev.kind]
        ms.set_context(mode=ms.PYNATIVE_MODE)
        if self.target == "CPU":
            ms.set_device("CPU")
            ms.runtime.launch_blocking()  # as the MindSpore runner: async dispatch costs ms per kernel on CPU
            if req.get("threads"):
                ms.device_context.cpu.op_tuning.threads_num(req["threads"])
        else:
            try:
                ms.set_device(self.target, dev.index + int(os.environ.get("DEVICE_ID", "0")))
            except (RuntimeError, ValueError) as exc:
                raise BackendUnavailable(f"MindSpore cannot use {self.target}: {_first_line(exc)}") from None
        init()  # backend from the device target: mccl, nccl or hccl
        self.backend = {"CPU": "mccl", "GPU": "nccl", "Ascend": "hccl"}[self.target]
        self.rank, self.world = get_rank(), get_group_size()
        ms.reset_auto_parallel_context()
        ms.set_auto_parallel_context(
            parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=self.world
        )
        self.version = ms.__version__

    def build(self, spec, weights: dict[str, np.ndarray], hp: dict) -> None:
        ms = self.ms
        from mindspore import Tensor, nn

        from runners.backends.mindspore_adam import TorchRuleAdam
        from runners.backends.mindspore_backend import make_loss

        net = load_object(spec.models["mindspore"])(spec.model)
        params = list(net.get_parameters())
        if sorted(p.name for p in params) != sorted(weights):
            raise RuntimeError("MindSpore model and weights disagree on parameter names")
        for p in params:
            p.set_data(Tensor(weights[p.name]))
        self.net, self.params = net, net.trainable_params()
        self.loss_fn = make_loss(spec)
        self.opt = TorchRuleAdam(self.params, lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["adam_eps"])
        self.grad_fn = ms.value_and_grad(self._loss, None, self.params)
        self.reducer = nn.DistributedGradReducer(self.params, mean=True, degree=self.world)

    def _loss(self, x, y):
        return self.loss_fn(self.net(x), y)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One Adam step on the local shard; the reducer all-reduces and averages the gradients."""
        loss, grads = self.grad_fn(self.ms.Tensor(x), self.ms.Tensor(y))
        self._grads = self.reducer(grads)
        self.opt(self._grads)
        return float(loss.asnumpy())

    def last_grads(self) -> dict[str, np.ndarray]:
        """The averaged gradients of the last step."""
        return {p.name: g.asnumpy() for p, g in zip(self.params, self._grads, strict=True)}

    def synchronize(self) -> None:
        if self.target != "CPU":  # CPU kernels are launched blocking
            self.ms.runtime.synchronize()

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        from mindspore import ops

        total = ops.AllReduce()(self.ms.Tensor(np.asarray(values, np.float32))).asnumpy()
        return [float(v) / self.world for v in total]

    def state(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for p in self.net.get_parameters()}

    def threads(self) -> str:
        return str(self.threads_num) if self.threads_num else "framework default"

    def close(self) -> None:
        from mindspore.communication import release

        release()


def _engine(req: dict):
    return {"torch": TorchRank, "mindspore": MindSporeRank}[req["framework"]](req)


def _train(req: dict, eng) -> tuple[dict, dict[str, np.ndarray]]:
    """Warm-up then timed steps, each fenced by synchronisation, its input preparation timed apart; also returns
    the first step's averaged gradients, read after that step's timing."""
    local_losses, step_ms, input_ms = [], [], []
    total, said = req["warmup"] + req["steps"], 0.0
    for i in range(total):
        _maybe_crash(eng.rank, i)
        if time.monotonic() - said > PROGRESS_S:  # what a time-out report quotes as this rank's last line
            print(f"pairbench: rank {eng.rank} starting step {i} of {total}", flush=True)
            said = time.monotonic()
        t_in = time.perf_counter()
        x, y = shard(req, i, eng.rank, eng.world)
        eng.synchronize()
        t0 = time.perf_counter()
        loss = eng.step(x, y)
        eng.synchronize()
        t1 = time.perf_counter()
        if i == 0:
            grads0 = eng.last_grads()
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {i}")
        local_losses.append(loss)
        if i >= req["warmup"]:
            step_ms.append((t1 - t0) * 1e3)
            input_ms.append((t0 - t_in) * 1e3)
    return {"local_losses": local_losses, "step_ms": step_ms, "input_ms": input_ms}, grads0


def run_rank(req: dict, out_dir: Path) -> dict:
    """Everything one rank does; returns its result (rank 0 also saves the final parameters)."""
    eng = _engine(req)
    spec = get_workload(req["workload"])
    b = req["global_batch"]
    if b % eng.world:
        raise ValueError(f"global batch {b} is not divisible by {eng.world} processes")
    eng.build(spec, load_weights(Path(req["weights"]), spec.model), req["hyper_parameters"])
    trained, grads0 = _train(req, eng)
    losses = eng.mean_over_ranks(trained["local_losses"])
    state = eng.state()
    if eng.rank == 0:
        with open(out_dir / "params_rank0.npz", "wb") as fh:
            np.savez(fh, **state)
        with open(out_dir / "grads0_rank0.npz", "wb") as fh:
            np.savez(fh, **grads0)
    result = {
        "status": "ok",
        "rank": eng.rank,
        "world_size": eng.world,
        "backend": eng.backend,
        "framework_version": eng.version,
        "threads": eng.threads(),
        "local_batch": b // eng.world,
        "losses": losses,
        "params_digest": weights_digest(state),
        "host": platform.node(),
        **trained,
    }
    eng.close()
    return result


def _rank_from_env() -> int:
    for name in ("RANK", "RANK_ID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return -1


def _mindspore_scheduler() -> int:
    """msrun also runs this script as the cluster's scheduler (MS_ROLE=MS_SCHED): it only builds the cluster."""
    import mindspore as ms
    from mindspore.communication import init

    ms.set_context(mode=ms.PYNATIVE_MODE)
    init()
    return 0


def _redirect_output(log_dir: Path, rank: int) -> None:
    """torchrun interleaves its ranks' output; give each rank its own log, named as msrun names them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_dir / f"worker_{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runners.execution.dp_worker REQUEST.json", file=sys.stderr)
        return 2
    watch_parent()  # a rank dies with the pairbench that asked for it, whatever the launcher does
    req = json.loads(Path(argv[0]).read_text())
    if req["framework"] == "mindspore" and os.environ.get("MS_ROLE") == "MS_SCHED":
        return _mindspore_scheduler()
    out_dir = Path(req["out_dir"])
    rank = _rank_from_env()
    if rank >= 0:  # lets the orchestrator map a pid in the launcher's failure report to a rank
        (out_dir / f"rank_{rank}.pid").write_text(str(os.getpid()))
    if req["framework"] == "torch" and rank >= 0:
        _redirect_output(Path(req["log_dir"]), rank)
    try:
        result = run_rank(req, out_dir)
    except BackendUnavailable as exc:
        result = {"status": "unavailable", "rank": rank, "reason": f"rank {rank}: {exc}"}
    except Exception as exc:  # a failing rank leaves a result naming itself and the error
        traceback.print_exc()
        reason = f"rank {rank}: {type(exc).__name__}: {_first_line(exc)}"
        result = {"status": "failed", "rank": rank, "reason": reason}
    _atomic_json(out_dir / f"rank_{result['rank']}.json", result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
