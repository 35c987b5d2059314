"""The layer order of the code, read statically from every import (module level and inside functions): each
module imports only from its own layer or below, no two modules import each other through any path, nobody
imports another module's private names, and nobody imports the command line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hardware_profiles", "metrics", "runners", "reports", "benchmarks")

# Bottom to top; a module belongs to the layer of its longest matching prefix ("name=" matches that module only),
# so a new folder must be placed here before its modules have a layer.
LAYERS = [
    ("errors a user can cause", ("runners.errors",)),
    ("hardware profiles (data)", ("hardware_profiles",)),
    ("the machine: its devices and vendor readers", ("metrics.device",)),
    ("metrics (power windows, timing, parity, skill)", ("metrics",)),
    ("spec, devices, options and records", ("runners=", "runners.spec", "runners.devices", "runners.options",
                                            "runners.records")),
    ("data and weights", ("runners.data", "runners.weights")),
    ("workloads", ("runners.workloads",)),
    ("backends", ("runners.backends",)),
    ("engines (exported graphs)", ("runners.engines",)),
    ("execution (the worker process)", ("runners.execution",)),
    ("experiments (the parent process)", ("runners.experiments",)),
    ("reports", ("reports",)),
    ("command line", ("runners.cli",)),
    ("the pairbench command", ("runners.entry",)),
    ("benchmarks", ("benchmarks",)),
]  # fmt: skip


def layer_of(module: str) -> int:
    best, index = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            matches = module == p[:-1] if p.endswith("=") else module == p or module.startswith(p + ".")
            if matches and len(p) > best:
                best, index = len(p), i
    if index is None:
        raise KeyError(f"{module} is in no layer")
    return index


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(root: Path, module: str) -> bool:
    path = root / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


# Imports made at run time from strings: "package.module:Name" targets and `python -m package.module`.
_STRING_TARGET = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)+)(?::\w+)?$")


def import_graph(root: Path = ROOT) -> dict[str, set[tuple[str, str | None]]]:
    """module -> {(imported module, imported name or None)} for the project's own modules: import statements
    (absolute and relative, anywhere in the module) and module paths named in strings."""
    graph = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            name = _module_name(path)
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            edges = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    m = _STRING_TARGET.match(node.value)
                    if m and m.group(1).split(".")[0] in PACKAGES and _exists(root, m.group(1)):
                        edges.add((m.group(1), None))
                elif isinstance(node, ast.Import):
                    edges |= {(a.name, None) for a in node.names}
                elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
                    base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                    module = ".".join([*base, *([node.module] if node.module else [])])
                    for a in node.names:
                        sub = f"{module}.{a.name}"
                        edges.add((sub, None) if _exists(root, sub) else (module, a.name))
            graph[name] = {(m, n) for m, n in edges if m.split(".")[0] in PACKAGES}
    return graph


def violations(graph: dict[str, set[tuple[str, str | None]]]) -> list[str]:
    """Every broken rule of the layering, as a sentence."""
    out = []
    for module, edges in graph.items():
        for target, name in edges:
            if target not in graph:
                out.append(f"{module} imports {target}, which does not exist")
                continue
            if layer_of(target) > layer_of(module):
                out.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}), "
                    "a layer above it"
                )
            if name and name.startswith("_") and target != module:
                out.append(f"{module} imports the private name {name} of {target}")
            if target == "runners.cli" and not module.startswith("benchmarks") and module != "runners.entry":
                out.append(f"{module} imports the command line")
    out += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return out


def _cycles(graph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    adj = {m: sorted({t for t, _ in e if t in graph and t != m}) for m, e in graph.items()}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(adj):
        if v not in index:
            visit(v)
    return comps


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_the_layering_holds():
    assert violations(import_graph()) == []


@pytest.mark.parametrize(
    "module, target, name",
    [
        # The cycles and private or upward imports this layout removed: each would fail the test again.
        ("runners.execution.worker", "runners.experiments.skill", None),
        ("runners.data.source", "runners.data.stats", "Normalizer"),
        ("metrics.power.collectors", "runners.devices", None),
        ("hardware_profiles", "metrics.power.devices", None),
        ("runners.devices", "metrics.power.nvidia", "_nvml"),
        ("runners.experiments.skill", "runners.experiments.runs", "_record"),
        ("runners.records.store", "reports.build", None),
        ("runners.experiments.pair", "reports.build", None),
        ("reports.build", "runners.cli", None),
        ("runners.workloads.registry", "runners.backends.torch_backend", None),  # once, through a string target
        # The vendor readers and the machine sit below the power windows (as Zeus keeps device/ below monitor/).
        ("metrics.device.nvml", "metrics.power.window", None),
        ("metrics.device.machine", "metrics.power.collectors", None),
        # The errors are the ground: they import nothing of the project's, the spec included.
        ("runners.errors", "runners.spec", None),
        ("runners.errors", "hardware_profiles", None),
    ],
)
def test_the_back_edges_that_were_removed_would_fail(module, target, name):
    graph = import_graph()
    graph[module] = graph[module] | {(target, name)}
    assert violations(graph), (module, target, name)
