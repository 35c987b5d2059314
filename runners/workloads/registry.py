"""Name -> workload, and (workload, framework) -> runner class, imported lazily."""

from __future__ import annotations

import importlib

from runners.spec import FRAMEWORKS, PairbenchError, WorkloadSpec
from runners.workloads.aigoms.config import CONFIGS as AIGOMS_CONFIGS
from runners.workloads.fourcastnet.config import CONFIGS as FOURCASTNET_CONFIGS

_FOURCASTNET_MODELS = {
    "torch": "runners.workloads.fourcastnet.torch_model:AFNONet",
    "mindspore": "runners.workloads.fourcastnet.mindspore_model:AFNONet",
}
_DESCRIPTIONS = {
    "fourcastnet-tiny": "FourCastNet AFNO, 3 x 32 x 64 grid; CI and demo default",
    "fourcastnet-small": "FourCastNet AFNO, 3 x 64 x 128 grid; CPU benchmarks",
    "fourcastnet-era5": "FourCastNet AFNO as published: 20 x 720 x 1440, patch 8; GPU or NPU only",
    "aigoms-tiny": "AI-GOMS ocean backbone, 3 depth levels (19 in, 13 out) on 32 x 64; CI",
    "aigoms-small": "AI-GOMS ocean backbone, 5 depth levels (27 in, 21 out) on 64 x 128; CPU benchmarks",
    "aigoms-paper": "AI-GOMS as the study configured it: 67 in, 61 out (15 levels), 720 x 1440, patch 8; GPU or NPU",
}
_AIGOMS_MODELS = {
    "torch": "runners.workloads.aigoms.torch_model:MaskedOceanAE",
    "mindspore": "runners.workloads.aigoms.mindspore_model:MaskedOceanAE",
}
_RUNNERS = {
    "torch": "runners.backends.torch_backend:TorchRunner",
    "mindspore": "runners.backends.mindspore_backend:MindSporeRunner",
}


def _family(configs: dict, family: str, models: dict[str, str], **shared) -> dict[str, WorkloadSpec]:
    return {
        name: WorkloadSpec(name, family, cfg, models, _DESCRIPTIONS[name], **shared) for name, cfg in configs.items()
    }


WORKLOADS: dict[str, WorkloadSpec] = {
    **_family(FOURCASTNET_CONFIGS, "fourcastnet", _FOURCASTNET_MODELS),
    # The study's AI-GOMS training: relative L2 loss over the ocean (land masked), Adam at lr 1e-3.
    **_family(AIGOMS_CONFIGS, "aigoms", _AIGOMS_MODELS, lr=1e-3, loss="masked_relative_l2"),
}
DEFAULT_WORKLOAD = "fourcastnet-tiny"


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise PairbenchError(f"unknown workload '{name}'; known workloads: {', '.join(WORKLOADS)}") from None


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise PairbenchError(f"unknown framework '{framework}'; known frameworks: {', '.join(FRAMEWORKS)}")
    return framework


def load_object(target: str):
    """Import ``"package.module:Name"`` and return ``Name``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def runner_class(framework: str):
    """The runner class for ``framework``; importing it imports that framework."""
    target = _RUNNERS[check_framework(framework)]
    try:
        return load_object(target)
    except ImportError as exc:
        raise PairbenchError(f"{framework} cannot be imported on this machine ({exc})") from None
