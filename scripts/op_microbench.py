"""The operations that hold MindSpore back on this CPU, each timed alone in both frameworks (forward and backward,
on fourcastnet-small's shapes), PyTorch eager against MindSpore PyNative and MindSpore graph mode (mindspore.jit).

    python scripts/op_microbench.py

Prints a table of medians (ms) and MindSpore / PyTorch ratios. Each framework runs in its own subprocess.
docs/mindspore-performance.md quotes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOKENS = (2, 16, 32, 256)  # fourcastnet-small: batch 2, 16 x 32 tokens of width 256
HIDDEN = (2, 16, 32, 1024)  # its MLP's hidden layer
IMAGE = (2, 3, 64, 128)  # its input fields
CASES = [  # name, input shape, what is timed
    ("LayerNorm (256)", TOKENS),
    ("GELU, exact", HIDDEN),
    ("Dense 256->1024 with bias", TOKENS),
    ("transpose (0, 3, 1, 2)", TOKENS),
    ("patch embedding Conv2d 3->256, k=s=4", IMAGE),
    ("rfft2 + irfft2 over (16, 32)", TOKENS),
]
REPEATS = 30


def median_ms(fn) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def torch_child() -> dict:
    import torch

    cells = {
        "LayerNorm (256)": torch.nn.LayerNorm(256, eps=1e-6),
        "GELU, exact": torch.nn.GELU(),
        "Dense 256->1024 with bias": torch.nn.Linear(256, 1024),
        "transpose (0, 3, 1, 2)": lambda x: x.permute(0, 3, 1, 2).contiguous(),
        "patch embedding Conv2d 3->256, k=s=4": torch.nn.Conv2d(3, 256, 4, 4),
        "rfft2 + irfft2 over (16, 32)": lambda x: torch.fft.irfft2(
            torch.fft.rfft2(x, dim=(1, 2)), s=(16, 32), dim=(1, 2)
        ),
    }
    out = {}
    for name, shape in CASES:
        x = torch.randn(*shape, requires_grad=True)
        f = cells[name]

        def fwd(f=f, x=x):
            with torch.no_grad():
                f(x)

        def fwd_bwd(f=f, x=x):
            f(x).square().mean().backward()

        out[name] = {"eager forward": median_ms(fwd), "eager forward+backward": median_ms(fwd_bwd)}
    return out


def mindspore_child() -> dict:
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn, ops

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")
    ms.runtime.launch_blocking()

    class LayerNorm(nn.Cell):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(Tensor(np.ones(256, np.float32)))
            self.bias = Parameter(Tensor(np.zeros(256, np.float32)))
            self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-6)

        def construct(self, x):
            return self.norm(x, self.weight, self.bias)[0]

    class Transpose(nn.Cell):
        def construct(self, x):
            return x.transpose(0, 3, 1, 2)

    class Spectral(nn.Cell):
        def construct(self, x):
            return ops.irfft2(ops.rfft2(x, dim=(1, 2)), s=(16, 32), dim=(1, 2))

    cells = {
        "LayerNorm (256)": LayerNorm(),
        "GELU, exact": nn.GELU(approximate=False),
        "Dense 256->1024 with bias": nn.Dense(256, 1024),
        "transpose (0, 3, 1, 2)": Transpose(),
        "patch embedding Conv2d 3->256, k=s=4": nn.Conv2d(3, 256, 4, 4, pad_mode="valid", has_bias=True),
        "rfft2 + irfft2 over (16, 32)": Spectral(),
    }

    class Loss(nn.Cell):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def construct(self, x):
            return (self.inner(x) ** 2).mean()

    out = {}
    for name, shape in CASES:
        x = Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        cell = cells[name]
        params = cell.trainable_params() or None
        grad = ms.value_and_grad(Loss(cell), 0, params)
        compiled_fwd, compiled_grad = ms.jit(cell.construct), ms.jit(grad)
        out[name] = {
            "eager forward": median_ms(lambda c=cell, x=x: c(x).asnumpy()),
            "eager forward+backward": median_ms(lambda g=grad, x=x: g(x)[0].asnumpy()),
            "graph forward": median_ms(lambda f=compiled_fwd, x=x: f(x).asnumpy()),
            "graph forward+backward": median_ms(lambda g=compiled_grad, x=x: g(x)[0].asnumpy()),
        }
    return out


def main() -> int:
    if len(sys.argv) == 2 and sys.argv[1] in ("--torch", "--mindspore"):
        print(json.dumps(torch_child() if sys.argv[1] == "--torch" else mindspore_child()))
        return 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    got = {}
    for fw in ("torch", "mindspore"):
        proc = subprocess.run(
            [sys.executable, __file__, f"--{fw}"], capture_output=True, text=True, env=env, cwd="/tmp", timeout=1800
        )
        if proc.returncode != 0:
            print(f"{fw} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        got[fw] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'operation':<38} {'PyTorch f / f+b':>17} {'MS PyNative f / f+b':>21} {'MS graph f / f+b':>18}  ratio f+b")
    for name, _ in CASES:
        t, m = got["torch"][name], got["mindspore"][name]
        ratio = m["graph forward+backward"] / t["eager forward+backward"]
        print(
            f"{name:<38} {t['eager forward']:7.2f} / {t['eager forward+backward']:7.2f} "
            f"{m['eager forward']:9.2f} / {m['eager forward+backward']:8.2f} "
            f"{m['graph forward']:8.2f} / {m['graph forward+backward']:7.2f}  {ratio:6.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
