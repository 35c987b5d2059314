"""Minimal reproduction: torch.compile (inductor, CPU) turns an AFNO (FourCastNet) forward under bf16 or fp16 autocast
into NaN where the same eager forward is finite, with 512-bit generated vector code; at 256 bits it is finite.

Seen with torch 2.13.0 on an Intel Xeon with AMX-BF16 and AVX512-FP16 (issue 22, 2026-12): the whole forward NaN in
every element (12,288 of 12,288); patch embedding + position embedding + one block compiled as one graph 2,624 NaN
of 16,384; each block alone finite; with ``torch._inductor.config.cpp.simdlen = 256`` finite, 4.0e-3 relative L2
from fp32 like eager. Not seen on an AMD EPYC with AVX-512 BF16, nor on the Intel Xeon (KVM, gcc -march=native
"rocketlake" with amx_bf16 and avx512_fp16 flags) of 2026-12-06, where every rung below is finite.

Standalone (PyTorch only): the model is written out here, with the operations of
runners/workloads/fourcastnet/torch_model.py (FFT path; the Fourier filter in fp32 as its autocast policy has it).
Graphs of growing size ("rungs") are compiled under each low precision at the CPU's default vector width and, where
that is not finite, at 256 bits. Prints one JSON line: versions, the CPU's relevant flags, inductor's vector ISA, per
rung and dtype the non-finite counts (eager, compiled, compiled at 256 bits) and relative L2 from fp32, whether the
defect was reproduced, and the smallest rung that shows it. ``--quick`` compiles only the whole model.
tests/test_torch_compiled.py runs it (``--quick``) and checks what it can on any CPU: eager finite, and wherever the
compiled model is not finite, the 256-bit code finite and as close to fp32 as eager (the workaround's premise).
Whether a given CPU has the defect is not known in advance (the CPU of 2026-12-06 has the flags of the one that
showed it, and not the defect), so the test does not require it; run the script on the CPU in question.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch
import torch.nn.functional as F
from torch import nn

RELEVANT_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16",
)  # fmt: skip
GRID, PATCH, CHANS, EMBED, BLOCKS, DEPTH, LAMBD = (32, 64), 4, 3, 64, 4, 2, 0.01
TOKENS = (GRID[0] // PATCH, GRID[1] // PATCH)


class Filter(nn.Module):
    """AFNO: rfft2, a block-diagonal complex two-layer MLP with soft shrinkage on all modes, irfft2; in fp32."""

    def __init__(self):
        super().__init__()
        bs = EMBED // BLOCKS
        self.w1, self.w2 = (nn.Parameter(0.02 * torch.randn(2, BLOCKS, bs, bs)) for _ in range(2))
        self.b1, self.b2 = (nn.Parameter(0.02 * torch.randn(2, BLOCKS, bs)) for _ in range(2))

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            dtype, bias = x.dtype, x
            x = x.float()
            b, h, w, c = x.shape
            s = torch.fft.rfft2(x, dim=(1, 2), norm="ortho").reshape(b, h, w // 2 + 1, BLOCKS, c // BLOCKS)
            mm = "...bi,bio->...bo"
            r, i = s.real, s.imag
            o1r = F.relu(torch.einsum(mm, r, self.w1[0]) - torch.einsum(mm, i, self.w1[1]) + self.b1[0])
            o1i = F.relu(torch.einsum(mm, i, self.w1[0]) + torch.einsum(mm, r, self.w1[1]) + self.b1[1])
            o2r = torch.einsum(mm, o1r, self.w2[0]) - torch.einsum(mm, o1i, self.w2[1]) + self.b2[0]
            o2i = torch.einsum(mm, o1i, self.w2[0]) + torch.einsum(mm, o1r, self.w2[1]) + self.b2[1]
            o = torch.stack([F.softshrink(o2r, LAMBD), F.softshrink(o2i, LAMBD)], dim=-1)
            o = torch.view_as_complex(o.contiguous()).reshape(b, h, w // 2 + 1, c)
            return torch.fft.irfft2(o, s=(h, w), dim=(1, 2), norm="ortho").type(dtype) + bias


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.filter, self.norm2 = nn.LayerNorm(EMBED), Filter(), nn.LayerNorm(EMBED)
        self.mlp = nn.Sequential(nn.Linear(EMBED, 4 * EMBED), nn.GELU(), nn.Linear(4 * EMBED, EMBED))

    def forward(self, x):
        x = self.filter(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class Net(nn.Module):
    """Patch embedding + position embedding, ``depth`` blocks, and the head unless ``head`` is False."""

    def __init__(self, depth: int, head: bool):
        super().__init__()
        self.proj = nn.Conv2d(CHANS, EMBED, PATCH, stride=PATCH)
        self.pos = nn.Parameter(0.02 * torch.randn(1, TOKENS[0] * TOKENS[1], EMBED))
        self.blocks = nn.ModuleList(Block() for _ in range(depth))
        self.head = nn.Linear(EMBED, PATCH * PATCH * CHANS, bias=False) if head else None

    def forward(self, x):
        x = (self.proj(x).flatten(2).transpose(1, 2) + self.pos).reshape(x.shape[0], *TOKENS, EMBED)
        for blk in self.blocks:
            x = blk(x)
        return x if self.head is None else self.head(x)


def rungs(quick: bool):
    """(name, module, input), smallest graph first."""
    torch.manual_seed(0)
    tokens = torch.randn(2, *TOKENS, EMBED)
    fields = torch.randn(2, CHANS, *GRID)
    ladder = [
        ("filter", Filter(), tokens),
        ("block", Block(), tokens),
        ("embed+block", Net(1, head=False), fields),
        (f"embed+{DEPTH} blocks+head (the whole model)", Net(DEPTH, head=True), fields),
    ]
    return ladder[-1:] if quick else ladder


def bad(t: torch.Tensor) -> int:
    return int((~torch.isfinite(t)).sum())


def rel_l2(a: torch.Tensor, ref: torch.Tensor) -> float | None:
    return None if bad(a) else float((a - ref).norm() / ref.norm())


def compiled(module, x, dtype, simdlen):
    from torch._inductor import config

    torch._dynamo.reset()
    config.cpp.simdlen = simdlen
    with torch.no_grad(), torch.autocast("cpu", dtype):
        return torch.compile(module)(x).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="compile only the whole model")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    isa = pick_vec_isa()
    flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    result = {
        "torch": torch.__version__,
        "cpu": model or platform.processor(),
        # metrics/device/cpu.py's RELEVANT, copied: this script imports no project code
        "cpu_flags": [f for f in RELEVANT_FLAGS if f in flags],
        "vec_isa": f"{isa} ({isa.bit_width() if isa else 0} bit)",
        "threads": args.threads,
        "rungs": [],
    }
    for name, module, x in rungs(args.quick):
        with torch.no_grad():
            ref = module(x).float()
        for label, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            with torch.no_grad(), torch.autocast("cpu", dtype):
                eager = module(x).float()
            default = compiled(module, x, dtype, None)
            row = {"graph": name, "dtype": label, "values": ref.numel(), "eager_not_finite": bad(eager)}
            row.update(compiled_not_finite=bad(default), eager_rel_l2=rel_l2(eager, ref))
            row["compiled_rel_l2"] = rel_l2(default, ref)
            if bad(default) and not bad(eager):
                narrow = compiled(module, x, dtype, 256)
                row.update(compiled_256_not_finite=bad(narrow), compiled_256_rel_l2=rel_l2(narrow, ref))
            row["defect"] = bool(bad(default) and not bad(eager) and row.get("compiled_256_not_finite") == 0)
            result["rungs"].append(row)
    shown = [r for r in result["rungs"] if r["defect"]]
    result["reproduced"] = bool(shown)
    result["smallest_graph"] = shown[0]["graph"] if shown else None
    result["env"] = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
