"""The AI-GOMS ocean family: its workloads, models, training settings, descriptions and where each is run."""

from runners.spec import WorkloadFamily
from runners.workloads.aigoms.config import CONFIGS

FAMILY = WorkloadFamily(
    name="aigoms",
    configs=CONFIGS,
    models={
        "torch": "runners.workloads.aigoms.torch_model:MaskedOceanAE",
        "mindspore": "runners.workloads.aigoms.mindspore_model:MaskedOceanAE",
    },
    descriptions={
        "aigoms-tiny": "AI-GOMS ocean backbone, 3 depth levels (19 in, 13 out) on 32 x 64; CI",
        "aigoms-small": "AI-GOMS ocean backbone, 5 depth levels (27 in, 21 out) on 64 x 128; CPU benchmarks",
        "aigoms-paper": (
            "AI-GOMS as the study configured it: 67 in, 61 out (15 levels), 720 x 1440, patch 8; GPU or NPU"
        ),
    },
    # The study's AI-GOMS training: relative L2 loss over the ocean (land masked), Adam at lr 1e-3; one step a day.
    spec={"lr": 1e-3, "loss": "masked_relative_l2", "time_step_hours": 24.0},
    budgets={("pair", "aigoms-small", "cpu"): {"warmup_steps": 2, "train_steps": 10, "forward_steps": 5}},
    infeasible={
        ("pair", "aigoms-paper", "cpu"): "aigoms-paper (143 M parameters, 720 x 1440) is for a GPU or NPU",
        ("forecast", "aigoms-paper", "cpu"): "a ten-day aigoms-paper forecast is for a GPU or NPU",
    },
    skill=("aigoms-tiny",),  # the grid the built-in ocean data comes in
)
