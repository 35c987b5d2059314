"""AI-GOMS: the configuration states the study's network, both implementations compute the same model (forecasting
and masked pre-training), and the land-masked relative L2 loss is the study's, in both frameworks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import needs_both, needs_mindspore, needs_torch, run_json, torch_flops

from metrics.parity import FP32_BOUNDS as TOLERANCES
from runners.errors import PairbenchError
from runners.experiments.pair import run_pair
from runners.options import PairOptions
from runners.workloads.aigoms.config import CONFIGS, PAPER_DEPTHS_M, AIGOMSConfig
from runners.workloads.registry import get_workload

# Odd sizes: a 24 x 72 grid (6 x 18 tokens), half the latitudinal and 0.6 of the zonal Koopman modes,
# AFNO hard thresholding at 0.5, three Koopman layers and a decoder deeper than the encoder.
ODD = {
    "img_size": [24, 72],
    "patch_size": 4,
    "depths_m": [0, 30],
    "embed_dim": 24,
    "depth": 1,
    "decoder_embed_dim": 36,
    "decoder_depth": 2,
    "koopman_depth": 3,
    "modes_h_ratio": 0.5,
    "modes_w_ratio": 0.6,
    "num_blocks": 3,
    "hard_thresholding_fraction": 0.5,
}


def test_paper_configuration_is_the_studys():
    cfg = CONFIGS["aigoms-paper"]
    assert (cfg.in_chans, cfg.out_chans) == (67, 61)
    assert cfg.depths_m == PAPER_DEPTHS_M and len(PAPER_DEPTHS_M) == 15
    assert cfg.out_channels[:2] == ("t0", "t6") and cfg.out_channels[15] == "s0"
    assert cfg.out_channels[-2:] == ("v500", "ssh") and cfg.in_channels[-1] == "orog"
    assert cfg.tokens == (90, 180) and cfg.koopman_modes == (90, 72)  # 0.8 of the 91 zonal modes
    # Counted by hand from the configuration, independently of parameter_shapes().
    e, d, t, p2 = 512, 1024, 90 * 180, 64

    def afno_block(w):
        bs = w // 8
        return 4 * w + 2 * (2 * 8 * bs * bs) + 2 * (2 * 8 * bs) + 2 * w * 4 * w + 4 * w + w

    expected = (
        t * e + e + e * 67 * p2 + e  # positional embedding, mask token, patch embedding
        + 12 * afno_block(e) + 2 * e  # encoder and its norm
        + 2 * (2 * 90 * 72 * e)  # two Koopman layers
        + t * d + e * d + d  # decoder positional embedding and embedding
        + 8 * afno_block(d) + 2 * d  # decoder and its norm
        + d * 61 * p2 + 61 * p2  # prediction head
    )  # fmt: skip
    assert cfg.parameter_count() == expected == 143_108_928


def test_configuration_round_trips_and_rejects_bad_values():
    cfg = AIGOMSConfig.from_dict(ODD)
    assert AIGOMSConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="depths_m"):
        AIGOMSConfig.from_dict({**ODD, "depths_m": [30, 0]})
    with pytest.raises(ValueError, match="modes_w_ratio"):
        AIGOMSConfig.from_dict({**ODD, "modes_w_ratio": 0.0})
    with pytest.raises(ValueError, match="unknown AI-GOMS"):
        AIGOMSConfig.from_dict({**ODD, "num_heads": 16})


def test_output_mask_follows_depth():
    cfg = CONFIGS["aigoms-tiny"]
    mask = cfg.output_mask()
    assert mask.shape == (13, 32, 64) and set(np.unique(mask)) == {0.0, 1.0}
    t0, t50, t200, ssh = mask[0], mask[1], mask[2], mask[12]
    assert np.array_equal(ssh, t0) and np.array_equal(mask[3], t0)  # s0 and t0 share the surface mask
    assert t200.sum() < t50.sum() <= t0.sum() < t0.size  # land grows with depth; there is land
    assert np.all(t0[t200 == 1] == 1)  # ocean at 200 m is ocean at the surface


def _torch_shapes(name: str) -> dict:
    return run_json(f"""
import json, torch
from runners.workloads.aigoms.config import CONFIGS
from runners.workloads.aigoms.torch_model import MaskedOceanAE
with torch.device('meta'):
    net = MaskedOceanAE(CONFIGS[{name!r}])
print(json.dumps({{k: list(v.shape) for k, v in net.state_dict().items()}}))
""")


@needs_torch
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torch_parameters_match_configuration(name):
    got = _torch_shapes(name)
    expected = {k: list(v) for k, v in CONFIGS[name].parameter_shapes().items()}
    assert list(got.items()) == list(expected.items())  # names, shapes and order


@needs_mindspore
@pytest.mark.parametrize("name", ["aigoms-tiny", "aigoms-small"])
def test_mindspore_parameters_match_configuration(name):
    got = run_json(f"""
import json
from runners.workloads.aigoms.config import CONFIGS
from runners.workloads.aigoms.mindspore_model import MaskedOceanAE
net = MaskedOceanAE(CONFIGS[{name!r}])
print(json.dumps({{p.name: list(p.shape) for p in net.get_parameters()}}))
""")
    assert got == {k: list(v) for k, v in CONFIGS[name].parameter_shapes().items()}


@needs_torch
@pytest.mark.parametrize("model", [CONFIGS["aigoms-tiny"].to_dict(), ODD], ids=["tiny", "odd"])
def test_analytic_flops_match_torch_flop_counter(model):
    got = torch_flops(
        "runners.workloads.aigoms.torch_model:MaskedOceanAE", "runners.workloads.aigoms.config:AIGOMSConfig", model
    )
    f = AIGOMSConfig.from_dict(model).flops()
    assert (got["forward"], got["train"]) == (2 * f.matmul_forward, 2 * f.matmul_train)


def _pair(tmp_path, **kw):
    out = run_pair(PairOptions(results_dir=tmp_path, forward_steps=2, warmup_steps=0, **kw), progress=lambda s: None)
    for rec in out.records:
        assert rec["status"] == "ok", rec.get("reason")
    p = out.comparison
    assert p["forward_rel_l2"] <= TOLERANCES["forward"], (out.records[0]["seed"], p)
    assert p["gradient_max_rel_l2"] <= TOLERANCES["gradients"], (out.records[0]["seed"], p)
    assert p["loss_max_rel"] <= TOLERANCES["losses"], (out.records[0]["seed"], p)
    return out


@needs_both
def test_tiny_forward_gradients_and_twenty_adam_steps_agree(tmp_path):
    out = _pair(tmp_path, workload="aigoms-tiny", train_steps=20)
    for rec in out.records:
        assert rec["param_count"] == CONFIGS["aigoms-tiny"].parameter_count()
        assert rec["hyper_parameters"]["loss"] == "masked_relative_l2"
        assert rec["losses"][-1] < 0.98 * rec["losses"][0], rec["losses"]  # measured 0.965: Adam steps
    grads = np.load(out.run_dir / "torch.npz")
    koopman = grads["grad/koopman.0.weight"]
    assert np.abs(koopman).max() > 0  # the propagator is in the gradient path


@needs_both
def test_odd_sizes_agree(tmp_path):
    out = _pair(tmp_path, workload="aigoms-tiny", model=ODD, train_steps=3)
    assert out.records[0]["model"]["koopman_depth"] == 3


_MASKED_STEP = """
import json, numpy as np
from runners.workloads.aigoms.config import AIGOMSConfig
cfg = AIGOMSConfig.from_dict({model!r})
w = cfg.init_weights(11)
rng = np.random.default_rng(5)
x = rng.standard_normal((2, cfg.in_chans, *cfg.img_size), dtype=np.float32)
y = rng.standard_normal((2, cfg.out_chans, *cfg.img_size), dtype=np.float32)
mask = cfg.random_token_mask(2, np.random.default_rng(9))
{body}
np.savez({out!r}, out=out, **{{'grad/' + k: v for k, v in grads.items()}})
print(json.dumps({{'ok': True}}))
"""
_TORCH_BODY = """
import torch
from runners.workloads.aigoms.torch_model import MaskedOceanAE
from runners.backends.torch_backend import make_loss
from runners.workloads.registry import get_workload
from runners.errors import PairbenchError
net = MaskedOceanAE(cfg)
net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
loss_fn = make_loss(get_workload('aigoms-tiny').with_model(cfg.to_dict()), torch.device('cpu'))
pred = net(torch.from_numpy(x), torch.from_numpy(mask))
loss_fn(pred, torch.from_numpy(y)).backward()
out = pred.detach().numpy()
grads = {k: p.grad.numpy() for k, p in net.named_parameters()}
"""
_MINDSPORE_BODY = """
import mindspore as ms
from mindspore import Tensor
from runners.workloads.aigoms.mindspore_model import MaskedOceanAE
from runners.backends.mindspore_backend import make_loss
from runners.workloads.registry import get_workload
from runners.errors import PairbenchError
net = MaskedOceanAE(cfg)
for p in net.get_parameters():
    p.set_data(Tensor(w[p.name]))
loss_fn = make_loss(get_workload('aigoms-tiny').with_model(cfg.to_dict()))
params = net.trainable_params()
out = net(Tensor(x), Tensor(mask)).asnumpy()
_, g = ms.value_and_grad(lambda a, b, m: loss_fn(net(a, m), b), None, params)(Tensor(x), Tensor(y), Tensor(mask))
grads = {p.name: v.asnumpy() for p, v in zip(params, g)}
"""


@needs_both
def test_masked_pretraining_step_agrees(tmp_path):
    """With 75 % of the patches replaced by the mask token, outputs and gradients agree, and the mask token
    (unused in forecasting) gets a gradient in both."""
    model = CONFIGS["aigoms-tiny"].to_dict()
    for fw, body in (("torch", _TORCH_BODY), ("mindspore", _MINDSPORE_BODY)):
        run_json(_MASKED_STEP.format(model=model, body=body, out=str(tmp_path / f"{fw}.npz")))
    a, b = np.load(tmp_path / "torch.npz"), np.load(tmp_path / "mindspore.npz")
    assert sorted(a.files) == sorted(b.files)
    rel = {k: float(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(a[k])) for k in a.files}
    assert rel["out"] <= TOLERANCES["forward"], rel
    assert max(rel.values()) <= TOLERANCES["gradients"], rel
    assert np.abs(a["grad/mask_token"]).max() > 0
    mask = CONFIGS["aigoms-tiny"].random_token_mask(2, np.random.default_rng(9))
    assert mask.sum(axis=1).tolist() == [96.0, 96.0]  # 75 % of 128 tokens per sample


_LOSS = """
import json, numpy as np
from runners.workloads.registry import get_workload
from runners.errors import PairbenchError
spec = get_workload('aigoms-tiny')
d = np.load({path!r})
{body}
print(json.dumps(values))
"""
_TORCH_LOSS = """
import torch
from runners.backends.torch_backend import make_loss
f = make_loss(spec, torch.device('cpu'))
values = [float(f(torch.from_numpy(d[k]), torch.from_numpy(d['y']))) for k in ('out', 'out_land')]
"""
_MINDSPORE_LOSS = """
from mindspore import Tensor
from runners.backends.mindspore_backend import make_loss
f = make_loss(spec)
values = [float(f(Tensor(d[k]), Tensor(d['y'])).asnumpy()) for k in ('out', 'out_land')]
"""


@needs_both
def test_masked_relative_l2_is_the_studys_loss(tmp_path):
    """Per sample |m (out - y)| / |m y|, averaged over samples; what the model predicts on land is ignored."""
    cfg = CONFIGS["aigoms-tiny"]
    m = cfg.output_mask()
    rng = np.random.default_rng(2)
    y = rng.standard_normal((3, cfg.out_chans, *cfg.img_size)).astype(np.float32)
    out = (y + 0.3 * rng.standard_normal(y.shape)).astype(np.float32)
    out_land = np.where(m == 1, out, 1e3).astype(np.float32)  # wild values on land only
    np.savez(tmp_path / "d.npz", y=y, out=out, out_land=out_land)
    # The study's LpLoss.rel on land-zeroed fields, written out in NumPy.
    expected = np.mean(
        [math.sqrt(np.sum((m * (o - t)) ** 2)) / math.sqrt(np.sum((m * t) ** 2)) for o, t in zip(out, y, strict=True)]
    )
    for body in (_TORCH_LOSS, _MINDSPORE_LOSS):
        values = run_json(_LOSS.format(path=str(tmp_path / "d.npz"), body=body))
        assert values[0] == pytest.approx(expected, rel=1e-5)
        assert values[1] == pytest.approx(values[0], rel=1e-6)
    assert get_workload("aigoms-tiny").hyper_parameters()["loss"] == "masked_relative_l2"


class _RecordingRunner:
    """A framework-free runner: training returns a constant loss; forward returns zeros and keeps its inputs."""

    framework = "none"

    def __init__(self, n_out):
        self.n_out, self.inputs = n_out, []

    def put(self, a):
        return np.array(a)

    def synchronize(self):
        pass

    def train_step(self, x, y):
        assert y.shape[1] == self.n_out and x.shape[1] > self.n_out
        return 1.0

    def device_memory(self):
        return {}

    def forward(self, x):
        self.inputs.append(np.array(x))
        k = len(self.inputs)  # a different, known forecast at every lead
        return np.arange(x.shape[0] * self.n_out * x.shape[2] * x.shape[3], dtype=np.float32).reshape(
            x.shape[0], self.n_out, *x.shape[2:]
        ) * (0.001 * k)

    def fetch(self, t):
        return np.asarray(t)


def test_rollout_feeds_forecasts_back_with_the_forcings_of_their_valid_time(tmp_path):
    """AI-GOMS's rollout input at lead k: the forecast for t + k, with each channel's ocean mean on its land
    (what the model was trained on there, not its untrained land values), then the forcings and orography
    at t + k."""
    from runners.execution.tasks import execute_skill
    from runners.spec import RunConfig

    cfg = AIGOMSConfig.from_dict({**ODD, "depths_m": [0]})  # 5 outputs, 11 inputs
    rng = np.random.default_rng(0)
    data = rng.standard_normal((12, cfg.in_chans, *cfg.img_size)).astype(np.float32)
    np.save(tmp_path / "d.npy", data)
    mean, std = rng.standard_normal(cfg.in_chans), 1 + rng.random(cfg.in_chans)
    source = {
        "kind": "npy", "path": str(tmp_path / "d.npy"), "channels": list(cfg.in_channels),
        "lats_deg": np.linspace(90, -90, cfg.img_size[0]).tolist(), "lons_deg": list(range(cfg.img_size[1])),
        "time_step_hours": 24.0,
    }  # fmt: skip
    info = {"source": source, "mean": mean.tolist(), "std": std.tolist(), "train": [0, 8]}
    run = RunConfig(
        workload="aigoms-tiny", framework="none", weights="-", warmup_steps=0, train_steps=2, batch_size=2,
        data={**info, "inits": [8, 9], "n_lead": 3},
    )  # fmt: skip
    runner = _RecordingRunner(cfg.out_chans)
    spec = get_workload("aigoms-tiny").with_model(cfg.to_dict())
    result, arrays = execute_skill(run, spec, runner)
    norm = (data - mean[:, None, None]) / std[:, None, None]
    assert arrays["forecasts"].shape == (2, 3, cfg.out_chans, *cfg.img_size)
    np.testing.assert_allclose(runner.inputs[0], norm[[8, 9]], atol=1e-5)  # the analysis, all channels
    ocean = cfg.output_mask().astype(bool)
    assert 0 < ocean.sum() < ocean.size
    for k in (1, 2):
        x, previous = runner.inputs[k], arrays["forecasts"][:, k - 1]
        fed = x[:, : cfg.out_chans]
        assert np.array_equal(fed[:, ocean], previous[:, ocean])  # the forecast at sea
        for b in range(2):
            for c in range(cfg.out_chans):
                land = fed[b, c][~ocean[c]]
                assert np.allclose(land, previous[b, c][ocean[c]].mean(), rtol=1e-6)  # its ocean mean on land
        np.testing.assert_allclose(x[:, cfg.out_chans :], norm[[8 + k, 9 + k], cfg.out_chans :], atol=1e-5)
    assert len(result["rollout_ms"]) == 3 and result["losses"] == [1.0, 1.0]


@needs_both
def test_skill_on_the_built_in_ocean_scores_the_ocean_only(tmp_path):
    from metrics.skill import latitude_weights, rmse
    from runners.experiments.skill import AGREEMENT, run_skill
    from runners.options import SkillOptions

    opts = SkillOptions(
        workload="aigoms-tiny", batch_size=4, train_steps=30, n_init=4, n_lead=3, seed=4, results_dir=tmp_path
    )
    summary = run_skill(opts, progress=lambda s: None).summary
    cfg = CONFIGS["aigoms-tiny"]
    assert [r["status"] for r in summary["records"]] == ["ok", "ok"], summary["records"]
    assert summary["channels"] == list(cfg.out_channels) and summary["hours"] == 24.0
    assert summary["agreement"]["rmse_max_rel_diff"] <= AGREEMENT
    rec = summary["records"][0]
    assert rec["scored_cells"] == "ocean at each channel's depth" and rec["data"]["generator"].startswith("ocean")
    # Persistence at 24 h for t200, recomputed by hand over the ocean cells at 200 m only.
    src = cfg.builtin_data().source
    inits = rec["data"]["test_inits"]
    c = cfg.out_channels.index("t200")
    pred = np.stack([src.read(i, i + 1)[0, c : c + 1] for i in inits])
    truth = np.stack([src.read(i + 1, i + 2)[0, c : c + 1] for i in inits])
    ocean = cfg.output_mask()[c : c + 1]
    expected = np.sqrt(np.mean(rmse(pred, truth, latitude_weights(32, "uniform"), mask=ocean) ** 2))
    assert rec["rmse_persistence_t200_24h"] == pytest.approx(expected, rel=1e-9)
    everywhere = np.sqrt(np.mean(rmse(pred, truth, latitude_weights(32, "uniform")) ** 2))
    assert everywhere < 0.9 * expected  # land cells (filled with a constant) would dilute the error


@needs_both
def test_masked_pretraining_runs_pair_in_both_frameworks(tmp_path):
    """`pairbench run --objective masked`: the same host-drawn token masks in both frameworks, parity as strict
    as forecasting, the mask token trained; a model without a mask token is refused as unsupported."""
    out = _pair(tmp_path, workload="aigoms-tiny", objective="masked", train_steps=5, seed=8)
    assert {r["objective"] for r in out.records} == {"masked"}
    grads = np.load(out.run_dir / "mindspore.npz")
    assert np.abs(grads["grad/mask_token"]).max() > 0  # 75 % of the tokens are the mask token
    opts = PairOptions(results_dir=tmp_path, workload="aigoms-tiny", train_steps=5, seed=8, forward_steps=2)
    forecast = run_pair(opts, progress=lambda s: None)
    assert forecast.records[0]["workload_fingerprint"] != out.records[0]["workload_fingerprint"]
    assert forecast.records[0]["loss_initial"] != out.records[0]["loss_initial"]  # same weights and data, masked
    with pytest.raises(PairbenchError, match=r"^fourcastnet-tiny has no masked pre-training \(its model has no mask"):
        run_pair(PairOptions(results_dir=tmp_path / "refused", objective="masked"), progress=lambda s: None)
    assert not (tmp_path / "refused").exists()  # refused before anything ran or was written
    unmasked = {**CONFIGS["aigoms-tiny"].to_dict(), "mask_ratio": 0.0}
    with pytest.raises(PairbenchError, match="mask_ratio 0.0: the masked objective would hide nothing"):
        run_pair(PairOptions(workload="aigoms-tiny", model=unmasked, objective="masked"), progress=lambda s: None)
