"""Where a training step's and a forward pass's time goes, in each framework, by kind of operation.

Each framework runs in a subprocess of its own under its own profiler (torch.profiler; mindspore.Profiler, whose
CPU op statistics are read from its output folder), on pairbench's models with the same weights and batch:
3 untimed steps, then ``--steps`` profiled training steps (forward, loss, backward, Adam) and as many forward
passes. Operations are grouped by kind (matrix products, FFT, GELU and erf, LayerNorm, shrink and ReLU,
layout and copies, the optimiser, other element-wise work); "host overhead" is the wall time not spent inside
any operation (Python, dispatch, autograd bookkeeping). Times are per step, in ms.

    python scripts/profile_step.py                                        # fourcastnet-small and aigoms-small
    python scripts/profile_step.py --workloads fourcastnet-small --spectral dft --mode compiled

docs/mindspore-performance.md summarises what it showed and what was changed."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.spec import MODES  # noqa: E402
from runners.workloads.spectral import SPECTRAL_TRANSFORMS  # noqa: E402

# Kinds of operation, tried in order on the lower-cased op name (PyTorch's aten names, MindSpore's op types).
KINDS = [
    ("optimiser (Adam)", r"adam|optimizer"),
    ("FFT", r"fft|rfft|irfft"),
    ("GELU and erf", r"gelu|erf"),
    ("LayerNorm", r"layer_?norm"),
    ("shrink and ReLU", r"shrink|relu|threshold"),
    ("matrix products", r"matmul|bmm|addmm|\bmm\b|^aten::mm|linear|conv|einsum|dense|baddbmm"),
    ("layout and copies", r"transpose|permute|reshape|view|copy|contiguous|pad|slice|cat|concat|stack|complex|"
     r"real|imag|select|index|expand|clone|split|cast|to_copy|zeros|fill|empty|broadcast"),
]  # fmt: skip
OTHER = "other element-wise"


def kind_of(name: str) -> str:
    low = name.lower()
    return next((kind for kind, pattern in KINDS if re.search(pattern, low)), OTHER)


# --------------------------------------------------------------------------------------------------
# One framework, in its own process (``--child FRAMEWORK``): prints {task: {"wall_ms", "ops": {name: ms}}}.
# --------------------------------------------------------------------------------------------------


def _setup(args):
    from runners.data.synthetic import synthetic_batch
    from runners.workloads.registry import get_workload

    spec = get_workload(args.workloads).overridden({"spectral_transform": args.spectral})
    shape = (args.batch, spec.model.in_chans, *spec.model.img_size)
    x, y = synthetic_batch(shape, spec.model.out_chans, 0, 1)
    return spec, spec.model.init_weights(0), x, y


def _child_torch(args) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from runners.spec import load_object

    spec, weights, x, y = _setup(args)
    net = load_object(spec.models["torch"])(spec.model)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()})
    step_net = torch.compile(net) if args.mode == "compiled" else net
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr, betas=spec.betas, eps=spec.adam_eps)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((step_net(x) - y) ** 2)
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            step_net(x)

    out = {}
    for task, fn in (("training step", train), ("forward pass", forward)):
        for _ in range(3):
            fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            wall = (time.perf_counter() - t0) * 1e3 / args.steps
        ops = {e.key: e.self_cpu_time_total / 1e3 / args.steps for e in prof.key_averages()}
        out[task] = {"wall_ms": wall, "ops": ops}
    return out


def _child_mindspore(args) -> dict:
    import mindspore as ms
    from mindspore import Profiler, Tensor

    from runners.backends.mindspore_adam import TorchRuleAdam
    from runners.spec import load_object

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    spec, weights, x, y = _setup(args)
    net = load_object(spec.models["mindspore"])(spec.model)
    for p in net.get_parameters():
        p.set_data(Tensor(np.asarray(weights[p.name], np.float32)))
    params = net.trainable_params()
    opt = TorchRuleAdam(params, lr=spec.lr, betas=tuple(spec.betas), eps=spec.adam_eps)

    def loss_fn(x, y):
        return ((net(x) - y) ** 2).mean()

    def forward_fn(x):
        return net(x)

    grad_fn = ms.value_and_grad(loss_fn, None, params)
    if args.mode == "compiled":
        grad_fn, forward_fn = ms.jit(grad_fn), ms.jit(forward_fn)
    x, y = Tensor(x), Tensor(y)

    def train():
        loss, grads = grad_fn(x, y)
        opt(grads)
        loss.asnumpy()

    def forward():
        forward_fn(x).asnumpy()

    out = {}
    for task, fn in (("training step", train), ("forward pass", forward)):
        for _ in range(3):
            fn()
        with tempfile.TemporaryDirectory(prefix="ms-profile-") as folder:
            prof = Profiler(output_path=folder)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            wall = (time.perf_counter() - t0) * 1e3 / args.steps
            prof.stop()
            prof.analyse()
            found = sorted(Path(folder).rglob("cpu_op_type_info_*.csv"))
            if len(found) != 1:
                raise RuntimeError(f"mindspore.Profiler wrote {len(found)} CPU op statistics files, expected one")
            with open(found[0]) as fh:
                ops = {row["op_type"]: float(row["total_compute_time"]) / args.steps for row in csv.DictReader(fh)}
        out[task] = {"wall_ms": wall, "ops": ops}
    return out


# --------------------------------------------------------------------------------------------------
# The parent: both frameworks, grouped and printed side by side.
# --------------------------------------------------------------------------------------------------


def profile(framework: str, workload: str, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", framework, "--workloads", workload]
    cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--spectral", args.spectral, "--mode", args.mode]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryDirectory(prefix="pairbench-profile-") as cwd:  # MindSpore writes rank_* folders here
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} {workload}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def grouped(task: dict) -> dict[str, float]:
    groups: dict[str, float] = {}
    for name, ms in task["ops"].items():
        groups[kind_of(name)] = groups.get(kind_of(name), 0.0) + ms
    groups["host overhead"] = max(0.0, task["wall_ms"] - sum(task["ops"].values()))
    return groups


def table(workload: str, results: dict[str, dict], task: str) -> list[str]:
    frameworks = list(results)
    groups = {fw: grouped(results[fw][task]) for fw in frameworks}
    kinds = [k for k, _ in KINDS] + [OTHER, "host overhead"]
    head = f"{workload}, {task} (ms per step)"
    lines = [
        head,
        f"  {'kind':<22}" + "".join(f"{fw:>12}" for fw in frameworks) + ("   ratio" if len(frameworks) == 2 else ""),
    ]
    for kind in kinds + ["wall"]:
        values = [results[fw][task]["wall_ms"] if kind == "wall" else groups[fw].get(kind, 0.0) for fw in frameworks]
        ratio = f"   {values[1] / values[0]:5.1f}x" if len(values) == 2 and values[0] > 0.05 else ""
        lines.append(f"  {kind:<22}" + "".join(f"{v:>12.2f}" for v in values) + ratio)
    top = sorted(results[frameworks[-1]][task]["ops"].items(), key=lambda kv: -kv[1])[:8]
    lines.append(f"  {frameworks[-1]}'s largest ops: " + ", ".join(f"{n} {v:.1f}" for n, v in top))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="fourcastnet-small,aigoms-small")
    ap.add_argument("--frameworks", default="torch,mindspore")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--spectral", choices=SPECTRAL_TRANSFORMS, default="fft")
    ap.add_argument("--mode", choices=MODES, default="eager")
    ap.add_argument("--child", choices=("torch", "mindspore"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps({"torch": _child_torch, "mindspore": _child_mindspore}[args.child](args)))
        return 0
    print(f"batch {args.batch}, {args.steps} profiled steps, spectral {args.spectral}, mode {args.mode}", flush=True)
    for workload in [w for w in args.workloads.split(",") if w]:
        try:
            results = {fw: profile(fw, workload, args) for fw in args.frameworks.split(",") if fw}
        except RuntimeError as exc:
            print(f"profile_step: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        for task in ("training step", "forward pass"):
            print()
            print("\n".join(table(workload, results, task)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
