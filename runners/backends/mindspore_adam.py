"""PyTorch's Adam update rule on MindSpore's fused Adam kernel, so both runners optimise alike.

MindSpore's ``ops.Adam`` (behind ``nn.Adam`` and ``experimental.optim.Adam``) adds epsilon to
``sqrt(v)`` before the bias correction, where torch.optim.Adam adds it after; the two differ whenever
``sqrt(v)`` is small against epsilon. Feeding the kernel ``eps * sqrt(1 - beta2**t)`` at step t makes
its update identical to torch's:

    torch:     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    ops.Adam:  p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps_t)

``mint.optim.Adam`` implements torch's rule directly but, in MindSpore 2.10 on CPU, left parameters
unchanged in our probe, so it is not used.
"""

from __future__ import annotations

import math

import mindspore as ms
from mindspore import ParameterTuple, Tensor, nn, ops


class _FusedUpdate(nn.Cell):
    """Every parameter's ops.Adam update in one compiled graph (mindspore.jit): one launch per step instead of
    one PyNative dispatch per parameter (fourcastnet-small: 54 parameters, 6.2-8.0 ms -> 4.0 ms per step on a
    2-core CPU, identical results; docs/mindspore-performance.md)."""

    def __init__(self, params, lr: float, betas: tuple[float, float]):
        super().__init__()
        self.params = ParameterTuple(params)
        self.m = self.params.clone(prefix="m", init="zeros")
        self.v = self.params.clone(prefix="v", init="zeros")
        self.adam = ops.Adam()
        self.lr, self.beta1, self.beta2 = (Tensor(v, ms.float32) for v in (lr, *betas))

    def construct(self, grads, beta1_power, beta2_power, eps_t):
        done = ()
        for i in range(len(self.params)):
            done += (
                self.adam(
                    self.params[i], self.m[i], self.v[i], beta1_power, beta2_power, self.lr, self.beta1, self.beta2,
                    eps_t, grads[i],
                ),
            )  # fmt: skip
        return done


class TorchRuleAdam:
    """Adam without weight decay or AMSGrad, numerically torch.optim.Adam's update; all parameters are updated
    by one compiled graph per step."""

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float):
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.update = _FusedUpdate(list(params), lr, betas)
        self._compiled = ms.jit(self.update.construct)

    def __call__(self, grads) -> None:
        self.step_count += 1
        t = self.step_count
        self._compiled(
            ms.mutable(tuple(grads)),  # a variable input: a tuple of tensors is otherwise a constant (a recompile)
            Tensor(self.beta1**t, ms.float32),
            Tensor(self.beta2**t, ms.float32),
            Tensor(self.eps * math.sqrt(1.0 - self.beta2**t), ms.float32),
        )
