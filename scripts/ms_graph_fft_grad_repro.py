"""Minimal reproduction: MindSpore's graph mode (mindspore.jit) on CPU returns different gradients on repeated calls
with the same inputs when a weight acts on a slice of an rfft2 spectrum that is padded back before irfft2 (what
FourCastNet's AFNO filter does with hard thresholding). The first compiled call agrees with PyNative; later ones do
not. PyNative is consistent.

Standalone (MindSpore and NumPy only). Prints one JSON line: the MindSpore version, the worst relative difference
between the gradients of a first and a later compiled call, the same for PyNative, and whether the inconsistency
("reproduced") was seen. Seen with MindSpore 2.10.0 on x86-64 CPU (2026-12-02): compiled 1.0, PyNative 0.
tests/test_spectral.py runs it, so that a MindSpore upgrade that fixes it is noticed."""

import json

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

ms.set_context(mode=ms.PYNATIVE_MODE)
ms.set_device("CPU")
KEPT = 5  # spectrum columns kept of the 9 that rfft2 gives for 16 longitudes


class KeptModesFilter(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) * 0.1))

    def construct(self, x):
        spec = ops.rfft2(x, dim=(1, 2), norm="ortho")  # (B, 8, 9, 64) complex
        kept = spec[:, :, 0:KEPT]
        yr, yi = ops.matmul(ops.real(kept), self.w), ops.matmul(ops.imag(kept), self.w)
        pad = (0, 0, 0, spec.shape[2] - KEPT)  # the dropped columns back, as zeros
        return ops.irfft2(ops.Complex()(ops.pad(yr, pad), ops.pad(yi, pad)), s=(8, 16), dim=(1, 2), norm="ortho")


def worst(a, b):
    return float(max(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30) for x, y in zip(a, b, strict=True)))


net = KeptModesFilter()
x = Tensor(np.random.default_rng(1).standard_normal((2, 8, 16, 64)).astype(np.float32))


def loss(x):
    return (net(x) ** 2).mean()


eager = ms.value_and_grad(loss, None, net.trainable_params())
compiled = ms.jit(eager)
runs = {name: [[g.asnumpy() for g in fn(x)[1]] for _ in range(3)] for name, fn in (("eager", eager), ("jit", compiled))}
result = {
    "mindspore": ms.__version__,
    "jit_repeat_difference": max(worst(runs["jit"][0], r) for r in runs["jit"][1:]),
    "pynative_repeat_difference": max(worst(runs["eager"][0], r) for r in runs["eager"][1:]),
    "first_jit_vs_pynative": worst(runs["eager"][0], runs["jit"][0]),
}
result["reproduced"] = result["jit_repeat_difference"] > 1e-5 >= result["pynative_repeat_difference"]
print(json.dumps(result))
