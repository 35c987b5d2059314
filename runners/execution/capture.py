"""The worker's part of ``pairbench diagnose``: one side's per-layer outputs on the synthetic stream's first batch,
its final output without and with capture, and the loss's parameter gradients.

How layers are captured, by framework and mode:

- PyTorch, eager and torch.compile: a forward hook on every module of ``named_modules()``, in the order the hooks
  fire (a module's after its children's). Under torch.compile dynamo traces the hooks: the tensors they keep become
  extra outputs of the compiled graph (compiled afresh, ``torch._dynamo.reset()``, as hooks added later are not
  guarded), which may change what the compiler generates.
- MindSpore PyNative: ``Cell.register_forward_hook(hook(cell, args, output))`` on every cell of
  ``cells_and_names()``.
- MindSpore graph mode (mindspore.jit): not possible; jit compiles a Cell's forward hooks into the graph and fails
  on them, so only the final output is compared.

Whatever the method, the final output with capture is compared with the same side's output without it, and the
result says whether capture changed it. Imports no framework at module level."""

from __future__ import annotations

import numpy as np

from runners.data.synthetic import synthetic_batch
from runners.spec import RunConfig

MODEL = "(model)"  # the name of the whole model's output among the layers


def _flatten(name: str, value) -> list[tuple[str, object]]:
    """A module's output as (name, tensor) pairs: a tuple or list of outputs as ``name[i]``; anything without a
    shape (None, a number) left out."""
    if isinstance(value, (tuple, list)):
        return [pair for i, v in enumerate(value) for pair in _flatten(f"{name}[{i}]", v)]
    return [(name, value)] if hasattr(value, "shape") else []


def _hooked_forward(runner, x, modules, register, traced: bool) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The runner's forward with a hook on each (name, module) of ``modules`` (``register(module, hook)`` returns a
    handle); the final output and each captured output, a module called again named ``name#2`` and so on. Outputs
    are copied to the host inside the hook (so that no later in-place operation changes them), except where the
    hook is ``traced`` into a compiled graph, which keeps the tensors and copies them after the call."""
    kept: list[tuple[str, object]] = []
    seen: dict[str, int] = {}

    def hook_for(name: str):
        def hook(module, args, output):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            for n, t in _flatten(label, output):
                kept.append((n, t if traced else runner.fetch(t)))

        return hook

    handles = [register(module, hook_for(name or MODEL)) for name, module in modules]
    try:
        out = runner.fetch(runner.forward(x))
    finally:
        for handle in handles:
            handle.remove()
    return out, [(n, runner.fetch(t) if traced else t) for n, t in kept]


def _torch_layers(runner, x) -> tuple[np.ndarray, list, dict]:
    import torch
    from torch._dynamo.utils import counters

    compiled = runner.run.mode == "compiled"
    method = "forward hooks on every module (named_modules), in the order they fire"
    if compiled:
        method += "; under torch.compile dynamo traces them and the kept tensors become extra graph outputs"
        torch._dynamo.reset()  # a fresh graph that traces the hooks (hooks added to a compiled model are not guarded)
    breaks, graphs = sum(counters["graph_break"].values()), counters["stats"]["unique_graphs"]
    try:
        out, layers = _hooked_forward(
            runner, x, runner.net.named_modules(), lambda m, h: m.register_forward_hook(h), compiled
        )
    finally:
        if compiled:
            torch._dynamo.reset()
    info = {"method": method, "per_layer": True}
    if compiled:
        info["graph_breaks"] = sum(counters["graph_break"].values()) - breaks
        info["compiled_graphs"] = counters["stats"]["unique_graphs"] - graphs
    return out, layers, info


def _mindspore_layers(runner, x) -> tuple[np.ndarray, list, dict]:
    if runner.run.mode == "compiled":
        out = runner.fetch(runner.forward(x))
        method = (
            "not possible in graph mode: mindspore.jit compiles a Cell's forward hooks into the graph and fails on "
            "them, so only the final output is compared"
        )
        return out, [(MODEL, out)], {"method": method, "per_layer": False}
    out, layers = _hooked_forward(
        runner, x, runner.net.cells_and_names(), lambda c, h: c.register_forward_hook(h), False
    )
    method = "Cell.register_forward_hook on every cell (cells_and_names), PyNative"
    return out, layers, {"method": method, "per_layer": True}


_CAPTURES = {"torch": _torch_layers, "mindspore": _mindspore_layers}


def nonfinite(array: np.ndarray) -> int:
    """How many values of ``array`` are NaN or infinite."""
    return int(array.size - np.isfinite(array).sum())


def capture_effect(plain: np.ndarray, captured: np.ndarray) -> dict:
    """Whether capture changed the final output: identical (NaN where NaN), or by how much (relative L2 and max
    abs over the values finite in both) with the non-finite values of each."""
    same = plain.shape == captured.shape and bool(np.array_equal(plain, captured, equal_nan=True))
    effect = {"capture_invariant": same, "nonfinite_without": nonfinite(plain), "nonfinite_with": nonfinite(captured)}
    if not same and plain.shape == captured.shape:
        both = np.isfinite(plain) & np.isfinite(captured)
        diff = (captured.astype(np.float64) - plain)[both]
        norm = float(np.linalg.norm(plain[both].astype(np.float64)))
        effect["capture_rel_l2"] = float(np.linalg.norm(diff)) / norm if norm else None
        effect["capture_max_abs"] = float(np.abs(diff).max()) if diff.size else None
    return effect


def execute_diagnose(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """One side of a diagnosis: the final output without capture, the loss and its parameter gradients (no hooks
    installed), then the forward again with every layer captured."""
    shape = (run.batch_size, spec.model.in_chans, *spec.model.img_size)
    x, y = synthetic_batch(shape, spec.model.out_chans, run.seed, 0)
    xd, yd = runner.put(x), runner.put(y)
    plain = runner.fetch(runner.forward(xd))
    loss, grads = runner.loss_and_grads(xd, yd)
    captured, layers, info = _CAPTURES[runner.framework](runner, xd)
    result = {
        "loss": float(loss) if np.isfinite(loss) else None,
        "layers": [{"name": n, "shape": list(a.shape)} for n, a in layers],
        **info,
        **capture_effect(plain, captured),
    }
    arrays = {"output": plain, **{f"layer/{i}": a for i, (_, a) in enumerate(layers)}}
    arrays.update({f"grad/{k}": v for k, v in grads.items()})
    return result, arrays
