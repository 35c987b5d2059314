"""The FourCastNet family: its workloads, models, descriptions and where each is run (its only declaration)."""

from runners.spec import WorkloadFamily
from runners.workloads.fourcastnet.config import CONFIGS

FAMILY = WorkloadFamily(
    name="fourcastnet",
    configs=CONFIGS,
    models={
        "torch": "runners.workloads.fourcastnet.torch_model:AFNONet",
        "mindspore": "runners.workloads.fourcastnet.mindspore_model:AFNONet",
    },
    descriptions={
        "fourcastnet-tiny": "FourCastNet AFNO, 3 x 32 x 64 grid; CI and demo default",
        "fourcastnet-small": "FourCastNet AFNO, 3 x 64 x 128 grid; CPU benchmarks",
        "fourcastnet-era5": "FourCastNet AFNO as published: 20 x 720 x 1440, patch 8; GPU or NPU only",
    },
    budgets={("pair", "fourcastnet-small", "cpu"): {"warmup_steps": 2, "train_steps": 10, "forward_steps": 5}},
    infeasible={
        ("pair", "fourcastnet-era5", "cpu"): "fourcastnet-era5 (75 M parameters, 720 x 1440) is for a GPU or NPU",
        ("forecast", "fourcastnet-era5", "cpu"): "a ten-day fourcastnet-era5 forecast is for a GPU or NPU",
        ("skill", "fourcastnet-small", "cpu"): "400 training steps of fourcastnet-small take too long on a CPU",
    },
    skill=("fourcastnet-tiny", "fourcastnet-small"),  # the grids the built-in barotropic data comes in
)
