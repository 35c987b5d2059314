"""Name -> workload, from the built-in families and any package's ``pairbench.workloads`` entry points;
each workload's family (its one declaration)."""

from __future__ import annotations

from importlib.metadata import entry_points

from runners.errors import PairbenchError
from runners.spec import WorkloadFamily, WorkloadSpec, load_object

# One line per built-in family; a family from another package needs no line here (its entry point suffices).
BUILTIN_FAMILIES = (
    "runners.workloads.fourcastnet.family:FAMILY",
    "runners.workloads.aigoms.family:FAMILY",
)
ENTRY_POINT_GROUP = "pairbench.workloads"


def _load_families() -> tuple[list[WorkloadFamily], dict[str, WorkloadSpec], list[str]]:
    """The built-in families, then those of installed packages. A package's family that cannot be loaded, whose
    workloads cannot be built, or whose family or workload names are taken is left out with one sentence saying
    why (the CLI prints it), never a crash: someone else's code must not stop pairbench."""
    families, workloads, problems = [], {}, []

    def add(family, where: str) -> None:
        if not isinstance(family, WorkloadFamily):
            problems.append(f"{where} is a {type(family).__name__}, not a WorkloadFamily")
            return
        try:
            specs = family.workloads()
        except Exception as exc:
            problems.append(f"{where}: its workloads cannot be built ({type(exc).__name__}: {exc})")
            return
        taken = [f.name for f in families if f.name == family.name] + sorted(set(specs) & set(workloads))
        if taken:
            problems.append(f"{where} is left out: the name {taken[0]} is already taken")
            return
        families.append(family)
        workloads.update(specs)

    for target in BUILTIN_FAMILIES:
        add(load_object(target), target)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} ({ep.value})"
        try:
            family = ep.load()
        except (Exception, SystemExit) as exc:
            problems.append(f"{where} cannot be loaded: {type(exc).__name__}: {exc}")
            continue
        add(family, where)
    return families, workloads, problems


FAMILIES, WORKLOADS, LOAD_PROBLEMS = _load_families()
_FAMILY_OF = {w: f for f in FAMILIES for w in f.configs}


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        left_out = "".join(f"; {p}" for p in LOAD_PROBLEMS)
        raise PairbenchError(f"unknown workload '{name}'; known workloads: {', '.join(WORKLOADS)}{left_out}") from None


def family_of(workload: str) -> WorkloadFamily:
    """The family that declares ``workload``."""
    get_workload(workload)
    return _FAMILY_OF[workload]
