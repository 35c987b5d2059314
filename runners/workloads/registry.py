"""Name -> workload, from the built-in families and any package's ``pairbench.workloads`` entry points;
(workload, framework) -> model and runner classes, imported lazily (only in that framework's process)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from runners.spec import PairbenchError, WorkloadFamily, WorkloadSpec, check_framework

# One line per built-in family; a family from another package needs no line here (its entry point suffices).
BUILTIN_FAMILIES = (
    "runners.workloads.fourcastnet.family:FAMILY",
    "runners.workloads.aigoms.family:FAMILY",
)
ENTRY_POINT_GROUP = "pairbench.workloads"
_RUNNERS = {
    "torch": "runners.backends.torch_backend:TorchRunner",
    "mindspore": "runners.backends.mindspore_backend:MindSporeRunner",
}


def load_object(target: str):
    """Import ``"package.module:Name"`` and return ``Name``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _load_families() -> tuple[list[WorkloadFamily], list[str]]:
    """The built-in families, then those of installed packages; a package whose family cannot be loaded is
    left out with one sentence saying why (``pairbench workloads`` prints it), never a crash."""
    families, problems = [load_object(t) for t in BUILTIN_FAMILIES], []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            family = ep.load()
        except Exception as exc:  # someone else's package: its failure must not stop pairbench
            problems.append(f"entry point {ep.name} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(family, WorkloadFamily):
            problems.append(f"entry point {ep.name} ({ep.value}) is a {type(family).__name__}, not a WorkloadFamily")
            continue
        families.append(family)
    return families, problems


def _workloads(families: list[WorkloadFamily], problems: list[str]) -> dict[str, WorkloadSpec]:
    out: dict[str, WorkloadSpec] = {}
    for family in families:
        specs = family.workloads()
        clash = sorted(set(specs) & set(out))
        if clash:
            problems.append(f"family {family.name} is left out: workload {clash[0]} is already declared")
            continue
        out.update(specs)
    return out


FAMILIES, LOAD_PROBLEMS = _load_families()
WORKLOADS: dict[str, WorkloadSpec] = _workloads(FAMILIES, LOAD_PROBLEMS)


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise PairbenchError(f"unknown workload '{name}'; known workloads: {', '.join(WORKLOADS)}") from None


def family_of(workload: str) -> WorkloadFamily:
    """The family that declares ``workload``."""
    name = get_workload(workload).family
    return next(f for f in FAMILIES if f.name == name)


def runner_class(framework: str):
    """The runner class for ``framework``; importing it imports that framework."""
    target = _RUNNERS[check_framework(framework)]
    try:
        return load_object(target)
    except ImportError as exc:
        raise PairbenchError(f"{framework} cannot be imported on this machine ({exc})") from None
