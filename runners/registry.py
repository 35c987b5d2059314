"""Name -> workload, and (workload, framework) -> runner class, imported lazily."""

from __future__ import annotations

import importlib

from runners.fourcastnet.config import CONFIGS as FOURCASTNET_CONFIGS
from runners.spec import FRAMEWORKS, PairbenchError, WorkloadSpec

_FOURCASTNET_MODELS = {
    "torch": "runners.fourcastnet.torch_model:AFNONet",
    "mindspore": "runners.fourcastnet.mindspore_model:AFNONet",
}
_DESCRIPTIONS = {
    "fourcastnet-tiny": "FourCastNet AFNO, 3 x 32 x 64 grid; CI and demo default",
    "fourcastnet-small": "FourCastNet AFNO, 3 x 64 x 128 grid; CPU benchmarks",
    "fourcastnet-era5": "FourCastNet AFNO as published: 20 x 720 x 1440, patch 8; GPU or NPU only",
}
_RUNNERS = {
    "torch": "runners.torch_runner:TorchRunner",
    "mindspore": "runners.mindspore_runner:MindSporeRunner",
}

WORKLOADS: dict[str, WorkloadSpec] = {
    name: WorkloadSpec(
        name=name,
        family="fourcastnet",
        model=cfg,
        models=_FOURCASTNET_MODELS,
        description=_DESCRIPTIONS[name],
    )
    for name, cfg in FOURCASTNET_CONFIGS.items()
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
