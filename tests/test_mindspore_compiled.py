"""MindSpore's compiled (graph mode, mindspore.jit) paths against PyNative: the DFT spectral path's gradients, and
the fused Adam update's single compilation on a model-sized parameter list. Each runs in its own interpreter."""

from __future__ import annotations

from conftest import needs_mindspore, run_json

pytestmark = needs_mindspore

_GRADIENTS = """
import json, numpy as np
from runners.backends.mindspore_backend import MindSporeRunner
from runners.spec import RunConfig
from runners.workloads.registry import get_workload
spec = get_workload("fourcastnet-tiny").overridden({"spectral_transform": "dft"})
weights = {k: np.asarray(v, np.float32) for k, v in spec.model.init_weights(11).items()}
rng = np.random.default_rng(5)
x = rng.standard_normal((2, spec.model.in_chans, *spec.model.img_size)).astype(np.float32)
y = rng.standard_normal((2, spec.model.out_chans, *spec.model.img_size)).astype(np.float32)
calls = {}
for mode in ("eager", "compiled"):
    run = RunConfig(workload=spec.name, framework="mindspore", weights="", mode=mode,
                    hyper_parameters=spec.hyper_parameters())
    runner = MindSporeRunner(spec, run)
    runner.build(weights)
    got = [runner.loss_and_grads(runner.put(x), runner.put(y)) for _ in range(3)]
    calls[mode] = (runner.versions()["execution_mode"], got)
loss0, ref = calls["eager"][1][0]
rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
print(json.dumps({
    "modes": [calls["eager"][0], calls["compiled"][0]],
    "loss": [abs(loss - loss0) / loss0 for loss, _ in calls["compiled"][1]],
    "gradients": [max(rel(g[k], ref[k]) for k in ref if np.any(ref[k])) for _, g in calls["compiled"][1]],
    "names": sorted(ref), "nonzero": sorted(k for k in ref if np.any(ref[k])),
}))
"""

# Worst relative L2 difference of a compiled call's gradients from PyNative's, over fourcastnet-tiny's parameters
# with a gradient (28 of 30), three compiled calls: measured 0.0 (MindSpore 2.10, x86-64 CPU, 2026-12-06); the
# bound leaves room for a reordered reduction in float32. The same comparison on the FFT path gives 1.07 on the
# second compiled call (the inconsistency that scripts/ms_graph_fft_grad_repro.py shows), far above it.
COMPILED_DFT_GRADIENT_BOUND = 1e-5


def test_compiled_dft_gradients_equal_pynative_on_every_call():
    got = run_json(_GRADIENTS)
    assert got["modes"] == ["pynative", "graph (jit)"]
    assert any("filter" in k for k in got["nonzero"]) and len(got["nonzero"]) >= len(got["names"]) - 2, got
    assert max(got["loss"]) <= COMPILED_DFT_GRADIENT_BOUND, got
    assert len(got["gradients"]) == 3 and max(got["gradients"]) <= COMPILED_DFT_GRADIENT_BOUND, got


_COMPILES = """
import json, numpy as np, mindspore as ms
from mindspore import Tensor
from mindspore.graph import api
from runners.backends.mindspore_adam import TorchRuleAdam
from runners.spec import load_object
from runners.workloads.registry import get_workload
ms.set_context(mode=ms.PYNATIVE_MODE)
ms.set_device("CPU")
spec = get_workload("fourcastnet-tiny")
net = load_object(spec.models["mindspore"])(spec.model)
params = net.trainable_params()
before = [p.asnumpy().copy() for p in params]
opt = TorchRuleAdam(params, lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
rng = np.random.default_rng(0)
new = []
for step in range(5):
    # mindspore.graph.api.ms_compile_cache: the phase of every graph compiled by mindspore.jit in this process
    cached = set(api.ms_compile_cache)
    opt([Tensor(rng.standard_normal(p.shape).astype(np.float32)) for p in params])
    new.append(sorted(set(api.ms_compile_cache) - cached))
print(json.dumps({
    "params": len(params), "model": len(spec.model.parameter_shapes()), "values": sum(int(p.size) for p in params),
    "new_graphs": new,
    "moved": sum(bool(np.any(p.asnumpy() != b)) for p, b in zip(params, before)),
}))
"""


def test_fused_adam_compiles_once_for_a_model_sized_parameter_list():
    """Five steps of the fused update over fourcastnet-tiny's 30 parameters: one graph is compiled at the first step
    and none after (a tuple of gradients passed as a constant would compile anew at every step: measured, one new
    graph per step)."""
    got = run_json(_COMPILES)
    assert got["params"] == got["model"] >= 30 and got["values"] > 50_000, got
    assert [len(n) for n in got["new_graphs"]] == [1, 0, 0, 0, 0], got
    assert got["moved"] == got["params"], got  # every parameter was updated, by the one graph
