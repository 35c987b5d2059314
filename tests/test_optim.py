"""MindSpore's Adam as the runner drives it gives torch.optim.Adam's update, also where gradients
are small against epsilon (where MindSpore's own epsilon placement would differ)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_both, run_python

pytestmark = needs_both

STEPS = 6


def _inputs(tmp_path, scale):
    rng = np.random.default_rng()
    w0 = rng.standard_normal((5, 7)).astype(np.float32)
    grads = (rng.standard_normal((STEPS, 5, 7)) * scale).astype(np.float32)
    np.savez(tmp_path / "in.npz", w0=w0, grads=grads)
    return w0


TORCH = """
import numpy as np, torch
d = np.load('{d}/in.npz')
p = torch.nn.Parameter(torch.from_numpy(d['w0'].copy()))
opt = torch.optim.Adam([p], lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
for g in d['grads']:
    p.grad = torch.from_numpy(g.copy()); opt.step()
np.save('{d}/torch.npy', p.detach().numpy())
"""

MINDSPORE = """
import numpy as np, mindspore as ms
from mindspore import Parameter, Tensor
from runners.backends.mindspore_adam import TorchRuleAdam
d = np.load('{d}/in.npz')
p = Parameter(Tensor(d['w0'].copy()), name='w')
opt = TorchRuleAdam([p], lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
for g in d['grads']:
    opt((Tensor(g),))
np.save('{d}/mindspore.npy', p.asnumpy())
"""


@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e-8])
def test_torch_rule_adam_matches_torch(tmp_path, scale):
    w0 = _inputs(tmp_path, scale)
    for code in (TORCH, MINDSPORE):
        proc = run_python(code.format(d=tmp_path))
        assert proc.returncode == 0, proc.stderr[-2000:]
    t = np.load(tmp_path / "torch.npy") - w0
    m = np.load(tmp_path / "mindspore.npy") - w0
    assert np.abs(t).max() > 1e-5  # the parameters moved
    # Updates of ~5e-4 on parameters of ~1: two float32 ulps of the parameter is the resolution.
    np.testing.assert_allclose(m, t, rtol=1e-4, atol=2.5e-7)
