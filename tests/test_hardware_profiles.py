"""Hardware profiles: every file loads with sane figures, names match devices, MFU is worked right."""

from __future__ import annotations

import pytest

from hardware_profiles import HardwareProfile, cpu_tdp, load_profiles, match_profile, mfu

REQUIRED = {
    "nvidia-v100",
    "nvidia-a100",
    "nvidia-h100",
    "nvidia-h200",
    "ascend-910b",
    "ascend-910a",
    "ascend-310p",
    "cpu-generic",
}


def test_every_required_profile_exists_with_positive_figures():
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    for p in profiles.values():
        assert p.kind in ("cuda", "ascend", "cpu") and p.sources
        assert all(v > 0 for v in p.peak_tflops.values()), p.id
        if p.kind != "cpu":
            assert p.tdp_w > 0 and p.memory_gb > 0 and p.bandwidth_tb_s > 0 and p.peak_tflops, p.id


@pytest.mark.parametrize(
    "kind, name, expected",
    [
        ("cuda", "NVIDIA H100 80GB HBM3", "nvidia-h100"),
        ("cuda", "NVIDIA H200", "nvidia-h200"),
        ("cuda", "NVIDIA A100-SXM4-80GB", "nvidia-a100"),
        ("cuda", "Tesla V100-SXM2-32GB", "nvidia-v100"),
        ("ascend", "910B2", "ascend-910b"),
        ("ascend", "910ProB", "ascend-910a"),
        ("ascend", "310P3", "ascend-310p"),
        ("cpu", "Intel(R) Xeon(R) Processor", "cpu-generic"),
        ("cuda", "NVIDIA GeForce RTX 4090", None),
        ("ascend", "xxx", None),
    ],
)
def test_match_profile(kind, name, expected):
    p = match_profile(kind, name)
    assert (p.id if p else None) == expected


def test_mfu_hand_worked():
    h100 = load_profiles()["nvidia-h100"]
    assert mfu(494.7e12, h100, "bf16") == pytest.approx(0.5)
    assert mfu(6.7e12, h100, "fp32") == pytest.approx(0.1)
    assert mfu(1e12, load_profiles()["cpu-generic"], "fp32") is None  # no peak: unavailable, not 0
    assert mfu(1e12, None, "fp32") is None
    assert mfu(1e12, load_profiles()["nvidia-v100"], "bf16") is None  # Volta has no bf16


def test_cpu_tdp_sources():
    generic = load_profiles()["cpu-generic"]
    assert cpu_tdp(generic, 2, environ={}) == (20.0, "TDP 20 W assumed (10 W x 2 logical cores, profile cpu-generic)")
    assert cpu_tdp(generic, 2, environ={"PAIRBENCH_CPU_TDP_W": "125"})[0] == 125.0
    bare = HardwareProfile(id="x", vendor="v", kind="cpu", description="", match=())
    assert cpu_tdp(bare, 4, environ={}) == (None, "profile x gives no TDP")


def test_a_price_per_hour_is_optional_and_needs_its_source(tmp_path):
    from hardware_profiles import load_profile

    base = "id: x\nvendor: v\nkind: cpu\ndescription: d\nmatch: [x]\n"
    assert all(p.price_usd_per_hour is None or p.price_source for p in load_profiles().values())
    (tmp_path / "plain.yaml").write_text(base)
    assert load_profile(tmp_path / "plain.yaml").price_usd_per_hour is None
    (tmp_path / "priced.yaml").write_text(base + "price_usd_per_hour: 2.5\nprice_source: a price list, 2026-01\n")
    priced = load_profile(tmp_path / "priced.yaml")
    assert (priced.price_usd_per_hour, priced.price_source) == (2.5, "a price list, 2026-01")
    for bad, message in (
        ("price_usd_per_hour: 2.5\n", "needs its price_source"),
        ("price_usd_per_hour: -1\nprice_source: s\n", "must be a positive number"),
        ("price_usd_per_hour: .nan\nprice_source: s\n", "must be a positive number"),
        ("price_usd_per_hour: cheap\nprice_source: s\n", "must be a positive number"),
    ):
        (tmp_path / "bad.yaml").write_text(base + bad)
        with pytest.raises(ValueError, match=message):
            load_profile(tmp_path / "bad.yaml")
