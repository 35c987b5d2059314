"""FourCastNet configurations: validation, the reference's mode selection, parameter counts."""

from __future__ import annotations

import math

import pytest

from runners.errors import PairbenchError
from runners.workloads.fourcastnet.config import CONFIGS, FourCastNetConfig
from runners.workloads.registry import WORKLOADS, get_workload

TINY = CONFIGS["fourcastnet-tiny"]


def test_named_configurations_exist():
    assert {"fourcastnet-tiny", "fourcastnet-small", "fourcastnet-era5"} <= set(WORKLOADS)


def test_era5_parameter_count_matches_the_reference_architecture():
    # Worked by hand from NVlabs afnonet.py with embed 768, depth 12, 8 blocks, patch 8, 20 channels.
    patch_embed = 768 * 20 * 8 * 8 + 768
    pos_embed = (720 // 8) * (1440 // 8) * 768
    filt = 2 * (2 * 8 * 96 * 96) + 2 * (2 * 8 * 96)
    mlp = (768 * 3072 + 3072) + (3072 * 768 + 768)
    block = 2 * 2 * 768 + filt + mlp
    head = 768 * 20 * 8 * 8  # bias=False in the reference
    final_norm = 2 * 768  # registered in the reference (and its checkpoints), unused in forward
    expected = patch_embed + pos_embed + 12 * block + final_norm + head
    assert expected == 74_691_840
    assert CONFIGS["fourcastnet-era5"].parameter_count() == expected


def test_era5_is_the_published_shape():
    era5 = CONFIGS["fourcastnet-era5"]
    assert (era5.img_size, era5.patch_size, era5.in_chans, era5.out_chans) == ((720, 1440), 8, 20, 20)
    assert (era5.embed_dim, era5.depth, era5.num_blocks, era5.mlp_ratio) == (768, 12, 8, 4.0)
    assert era5.tokens == (90, 180) and era5.num_tokens == 16_200


@pytest.mark.parametrize("fraction", [1.0, 0.75, 0.5, 0.2])
@pytest.mark.parametrize("img", [(32, 64), (40, 40), (24, 72)])
def test_kept_modes_reproduce_the_reference_slicing(fraction, img):
    cfg = FourCastNetConfig(
        img_size=img,
        patch_size=4,
        in_chans=1,
        out_chans=1,
        embed_dim=8,
        depth=1,
        num_blocks=2,
        hard_thresholding_fraction=fraction,
    )
    h, w = cfg.tokens
    total = h // 2 + 1
    kept = int(total * fraction)
    rows_ref = list(range(h))[total - kept : total + kept]
    cols_ref = list(range(w // 2 + 1))[:kept]
    rows, cols = cfg.kept_modes()
    assert list(range(h))[rows] == rows_ref
    assert list(range(w // 2 + 1))[cols] == cols_ref


@pytest.mark.parametrize(
    "change, message",
    [
        ({"img_size": (30, 64)}, "not divisible by patch_size"),
        ({"embed_dim": 66}, "not divisible by num_blocks"),
        ({"hard_thresholding_fraction": 0.0}, "hard_thresholding_fraction"),
        ({"hard_thresholding_fraction": 1.5}, "hard_thresholding_fraction"),
        ({"depth": 0}, "depth must be a positive integer"),
        ({"patch_size": 2.5}, "patch_size must be a positive integer"),
    ],
)
def test_invalid_configurations_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        FourCastNetConfig(**{**TINY.to_dict(), **change})


def test_round_trip_and_unknown_keys():
    assert FourCastNetConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown FourCastNet configuration keys: colour"):
        FourCastNetConfig.from_dict({**TINY.to_dict(), "colour": 1})


def test_unknown_workload_is_one_clear_sentence():
    with pytest.raises(PairbenchError, match="unknown workload 'fourcastnet-huge'; known workloads: "):
        get_workload("fourcastnet-huge")


def test_flop_count_scales_as_expected():
    f = TINY.flops()
    assert f.matmul_train > 2 * f.matmul_forward  # backward costs about twice the forward
    assert f.train == f.matmul_train + f.fft_train
    half = FourCastNetConfig(**{**TINY.to_dict(), "hard_thresholding_fraction": 0.5})
    assert half.flops().matmul_forward < f.matmul_forward  # fewer modes, fewer spectral FLOPs
    assert math.isclose(half.flops().fft_forward, f.fft_forward)


def test_init_weights_are_deterministic_and_distributed_as_the_reference():
    a, b, c = TINY.init_weights(3), TINY.init_weights(3), TINY.init_weights(4)
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)
    assert (a["blocks.0.norm1.weight"] == 1).all() and (a["blocks.0.mlp.fc1.bias"] == 0).all()
    w = CONFIGS["fourcastnet-small"].init_weights(0)["blocks.0.mlp.fc1.weight"]
    assert abs(float(w.std()) - 0.02) < 0.001
    bound = 1 / math.sqrt(TINY.in_chans * TINY.patch_size**2)
    assert abs(a["patch_embed.proj.weight"]).max() <= bound
