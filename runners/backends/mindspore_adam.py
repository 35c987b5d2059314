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
import numpy as np
from mindspore import Parameter, Tensor, ops


class TorchRuleAdam:
    """Adam without weight decay or AMSGrad, numerically torch.optim.Adam's update."""

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float):
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = [Parameter(Tensor(np.zeros(p.shape, np.float32)), name=f"m.{p.name}") for p in self.params]
        self.v = [Parameter(Tensor(np.zeros(p.shape, np.float32)), name=f"v.{p.name}") for p in self.params]
        self.step_count = 0
        self.adam = ops.Adam()
        self._const = {
            k: Tensor(v, ms.float32) for k, v in {"lr": lr, "beta1": self.beta1, "beta2": self.beta2}.items()
        }

    def __call__(self, grads) -> None:
        self.step_count += 1
        t = self.step_count
        b1_power = Tensor(self.beta1**t, ms.float32)
        b2_power = Tensor(self.beta2**t, ms.float32)
        eps_t = Tensor(self.eps * math.sqrt(1.0 - self.beta2**t), ms.float32)
        c = self._const
        for p, m, v, g in zip(self.params, self.m, self.v, grads, strict=True):
            self.adam(p, m, v, b1_power, b2_power, c["lr"], c["beta1"], c["beta2"], eps_t, g)
