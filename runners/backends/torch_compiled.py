"""torch.compile with a check that the compiled model computes a finite result wherever eager PyTorch does.

torch 2.13's inductor was seen (issue 22, an Intel Xeon with AMX-BF16 and AVX512-FP16, 2026-12) to compile
FourCastNet's bf16 and fp16 autocast forward into code whose output is NaN in every element where the eager forward
on the same input is finite; with 256-bit instead of 512-bit generated vector code (``cpp.simdlen = 256``) the
compiled output was finite and as close to fp32 as eager (4.0e-3 relative L2, the same as eager). Vector width is a
code-generation setting: the operations, their order in each lane and the dtypes are unchanged, so the arithmetic
the model asks for is the same. ``scripts/torch_compiled_lowp_repro.py`` reproduces the defect on a CPU that has it
and prints the smallest graph that shows it.

So on the first call in each grad mode the compiled output is checked: when it is not finite and the eager output on
the same input is, the model is compiled again at 256 bits (named in the record as ``compile_workaround``); when that
is not finite either, the run fails with a reason naming the defect and the reproduction. An eager output that is not
finite is the model's own (a diverged run) and is left to the training loop's checks.
"""

from __future__ import annotations

import torch

REPRODUCTION = "scripts/torch_compiled_lowp_repro.py"
WORKAROUND_SIMDLEN = 256


class CompiledDefectError(FloatingPointError):
    """The compiled model is not finite where the eager model is, also with the workaround."""


def vec_isa() -> str:
    """The vector ISA inductor generates CPU code for, with its width: ``"avx512 avx512_vnni amx_tile (512 bit)"``."""
    try:
        from torch._inductor import config
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        isa = pick_vec_isa()
    except Exception as exc:  # inductor's private API: say what failed rather than stop the run
        return f"unknown ({type(exc).__name__})"
    if not isa:
        return "none (scalar code)"
    width = config.cpp.simdlen or isa.bit_width()
    return f"{isa} ({width} bit)"


def _not_finite(out: torch.Tensor) -> int:
    return int((~torch.isfinite(out)).sum())


class CompiledModel:
    """``net`` compiled (``enabled``) or as it is, called like the module; ``facts()`` are its record fields.
    ``check`` False leaves the compiled output as it is (``pairbench diagnose``, whose point is to show it)."""

    def __init__(self, net, device: torch.device, enabled: bool, compile_fn=torch.compile, check: bool = True):
        self.net, self.device, self.enabled, self._compile = net, device, enabled, compile_fn
        self.check = enabled and check
        self.fn = compile_fn(net) if enabled else net
        self.workaround: str | None = None
        self._checked: set[bool] = set()

    def __call__(self, *args):
        out = self.fn(*args)
        mode = torch.is_grad_enabled()
        if not self.check or mode in self._checked:
            return out
        self._checked.add(mode)
        bad = _not_finite(out)
        if not bad:
            return out
        eager = self.net(*args)
        if _not_finite(eager):
            return out  # the model itself is not finite here: not the compiler's doing
        return self._recompile(args, bad, out.numel())

    def _defect(self, what: str) -> str:
        """``what`` the compiled code did, as the defect it is, naming the code and, on a CPU, the reproduction."""
        if self.device.type != "cpu":
            return f"torch.compile's {self.device.type} code {what} (a defect of torch {torch.__version__}'s compiler)"
        return (
            f"torch.compile's {vec_isa()} CPU code {what} (a code-generation defect of torch {torch.__version__}'s "
            f"inductor on this CPU; {REPRODUCTION} reproduces it)"
        )

    def _recompile(self, args, bad: int, total: int):
        from torch._inductor import config

        what = self._defect(f"gave {bad} non-finite of {total} outputs where eager PyTorch is finite on the same input")
        if self.device.type != "cpu" or config.cpp.simdlen == WORKAROUND_SIMDLEN:
            raise CompiledDefectError(what)
        torch._dynamo.reset()
        config.cpp.simdlen = WORKAROUND_SIMDLEN
        self.fn = self._compile(self.net)
        out = self.fn(*args)
        again = _not_finite(out)
        if again:
            raise CompiledDefectError(f"{what}; compiled again with {WORKAROUND_SIMDLEN}-bit vectors: still {again}")
        self.workaround = f"inductor cpp.simdlen={WORKAROUND_SIMDLEN}: {what}"
        return out

    def check_loss(self, loss: torch.Tensor, eager_loss) -> None:
        """After the first calls: a loss that is not finite where ``eager_loss()`` (the eager model's on the same
        batch and weights) is, is the compiler's defect, named as such rather than as a diverged run."""
        if not self.check or bool(torch.isfinite(loss)):
            return
        with torch.no_grad():
            reference = eager_loss()
        if bool(torch.isfinite(reference)):
            raise CompiledDefectError(
                self._defect(
                    f"gave the loss {float(loss)} where eager PyTorch's is {float(reference):.6g} on the same batch"
                )
            )

    def facts(self) -> dict:
        if not self.enabled:
            return {}
        facts = {"compile_vec_isa": vec_isa() if self.device.type == "cpu" else None}
        if self.workaround:
            facts["compile_workaround"] = self.workaround
        return facts
