"""Both implementations have the configuration's parameter names and shapes; FLOPs are counted right."""

from __future__ import annotations

import pytest
from conftest import needs_mindspore, needs_torch, run_json, torch_flops

from runners.workloads.fourcastnet.config import CONFIGS, FourCastNetConfig

HALF = FourCastNetConfig(
    img_size=(24, 72),
    patch_size=4,
    in_chans=2,
    out_chans=3,
    embed_dim=48,
    depth=2,
    num_blocks=3,
    hard_thresholding_fraction=0.5,
)


def _expected(cfg) -> dict:
    return {k: list(v) for k, v in cfg.parameter_shapes().items()}


@needs_torch
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torch_parameters_match_configuration(name):
    cfg = CONFIGS[name]
    got = run_json(f"""
import json, torch
from runners.workloads.fourcastnet.config import CONFIGS
from runners.workloads.fourcastnet.torch_model import AFNONet
with torch.device('meta'):
    net = AFNONet(CONFIGS[{name!r}])
print(json.dumps({{k: list(v.shape) for k, v in net.state_dict().items()}}))
""")
    assert got == _expected(cfg)  # dict equality; order checked below
    assert list(got) == list(_expected(cfg))
    assert sum(__import__("math").prod(s) for s in got.values()) == cfg.parameter_count()


@needs_mindspore
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_mindspore_parameters_match_configuration(name):
    cfg = CONFIGS[name]
    got = run_json(f"""
import json
from runners.workloads.fourcastnet.config import CONFIGS
from runners.workloads.fourcastnet.mindspore_model import AFNONet
net = AFNONet(CONFIGS[{name!r}])
print(json.dumps({{p.name: list(p.shape) for p in net.get_parameters()}}))
""")
    assert got == _expected(cfg)
    assert sum(__import__("math").prod(s) for s in got.values()) == cfg.parameter_count()


@needs_torch
@pytest.mark.parametrize(
    "cfg", [CONFIGS["fourcastnet-tiny"], CONFIGS["fourcastnet-small"], HALF], ids=["tiny", "small", "half-modes"]
)
def test_analytic_flops_match_torch_flop_counter(cfg):
    """torch.utils.flop_counter counts matmuls and convolutions (not FFTs): it must agree exactly
    with the analytic matmul count, forward and forward + backward, per sample."""
    batch = 2
    got = torch_flops(
        "runners.workloads.fourcastnet.torch_model:AFNONet",
        "runners.workloads.fourcastnet.config:FourCastNetConfig",
        cfg.to_dict(),
        batch,
    )
    f = cfg.flops()
    assert got["forward"] == batch * f.matmul_forward
    assert got["train"] == batch * f.matmul_train
