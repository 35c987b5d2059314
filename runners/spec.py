"""Framework-neutral descriptions of what to run: WorkloadSpec, RunConfig and the Runner protocol.

Imports neither torch nor mindspore, so that a machine with one framework (or none) can use it.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from metrics.device.machine import KINDS as DEVICE_KINDS
from runners.errors import PairbenchError

FRAMEWORKS = ("torch", "mindspore")
PRECISIONS = ("fp32", "bf16", "fp16")
LOSSES = ("mse", "masked_relative_l2")  # masked_relative_l2: per sample |m*(out-y)| / |m*y|, m the ocean mask
MODES = ("eager", "compiled")  # PyTorch eager / torch.compile; MindSpore PyNative / graph mode (jit)
# forecast: inputs at t, target at t + 1. masked: the same pairs with a random mask_ratio of the patch tokens
# replaced by the model's mask token (masked pre-training; models whose configuration has random_token_mask).
OBJECTIVES = ("forecast", "masked")


def masked_objective_refusal(spec) -> str | None:
    """Why ``spec`` cannot train the masked objective, or None when it can."""
    if not hasattr(spec.model, "random_token_mask"):
        return f"{spec.name} has no masked pre-training (its model has no mask token)"
    if not spec.model.mask_ratio > 0:
        return f"{spec.name} has mask_ratio {spec.model.mask_ratio}: the masked objective would hide nothing"
    return None


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise PairbenchError(f"unknown framework '{framework}'; known frameworks: {', '.join(FRAMEWORKS)}")
    return framework


def load_object(target: str):
    """Import ``"package.module:Name"`` and return ``Name``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class ModelConfig:
    """What the model configurations share (the protocol of WorkloadSpec.model), for frozen dataclasses:
    ``to_dict``/``from_dict`` as JSON (tuples travel as lists, unknown keys are refused), the parameter count from
    ``parameter_shapes()``, and outputs defined everywhere unless ``output_mask`` says otherwise."""

    label = "model"  # the name in the message for an unknown key
    # Settings added after records existed, left out of to_dict() while at their default, so that the model of a
    # run (part of its identity) stays what it was before the setting existed and earlier runs still pair.
    added_later: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        fields = self.__dataclass_fields__
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if not (k in self.added_later and v == fields[k].default)
        }

    @classmethod
    def from_dict(cls, d: dict):
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown {cls.label} configuration keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def parameter_count(self) -> int:
        return sum(math.prod(s) for s in self.parameter_shapes().values())

    def output_mask(self) -> None:
        """Every output is defined everywhere (no land mask)."""
        return None


@dataclass(frozen=True)
class FlopCount:
    """FLOPs per sample: matrix products counted exactly, FFTs estimated."""

    matmul_forward: int
    matmul_train: int
    fft_forward: float
    fft_train: float

    @property
    def forward(self) -> float:
        return self.matmul_forward + self.fft_forward

    @property
    def train(self) -> float:
        return self.matmul_train + self.fft_train


@dataclass(frozen=True)
class WorkloadSpec:
    """A named model configuration plus the training hyper-parameters shared by all runners.

    ``model`` is a configuration object with ``in_chans``, ``out_chans``, ``img_size``, ``parameter_shapes()``,
    ``init_weights(seed)``, ``flops()``, ``output_mask()`` (where each output is defined, or None for
    everywhere), ``builtin_data()``, ``to_dict()`` and ``from_dict()`` (see FourCastNetConfig, AIGOMSConfig).
    ``models`` maps each framework to ``"module:Class"``; the class takes ``model`` as its only argument and
    is imported only inside that framework's subprocess.
    """

    name: str
    family: str
    model: Any
    models: dict[str, str]
    description: str
    batch_size: int = 2
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    loss: str = "mse"
    time_step_hours: float = 6.0  # one forecast step (FourCastNet: 6 h; AI-GOMS: 1 day)

    def __post_init__(self) -> None:
        if not self.time_step_hours > 0:
            raise ValueError(f"time_step_hours must be positive, got {self.time_step_hours!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.loss == "masked_relative_l2" and self.model.output_mask() is None:
            raise ValueError(f"{self.name}: masked_relative_l2 needs a model whose output_mask() is not None")

    def with_model(self, model: dict[str, Any]) -> WorkloadSpec:
        """The same workload with its model configuration rebuilt from ``model``."""
        return replace(self, model=type(self.model).from_dict(model))

    def overridden(self, changes: dict[str, Any]) -> WorkloadSpec:
        """The same workload with ``changes`` to its model configuration (an option such as --spectral); a change
        the configuration refuses is one sentence."""
        if not changes:
            return self
        try:
            return self.with_model({**self.model.to_dict(), **changes})
        except (TypeError, ValueError) as exc:
            raise PairbenchError(f"invalid model override for {self.name}: {exc}") from None

    def hyper_parameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "adam_eps": self.adam_eps, "loss": self.loss}


# What a workload's model configuration provides (see WorkloadSpec.model); ModelConfig gives four of them.
MODEL_PROTOCOL = (
    "in_chans", "out_chans", "img_size", "parameter_shapes", "parameter_count", "init_weights", "flops",
    "output_mask", "builtin_data", "to_dict", "from_dict",
)  # fmt: skip
# The step counts a family may set for the asv suite, per task (the rest are the options' defaults).
BUDGET_FIELDS = {
    "pair": ("warmup_steps", "train_steps", "forward_steps"),
    "skill": ("batch_size", "train_steps", "lr", "n_init", "n_lead"),
    "forecast": ("batch_size", "n_lead", "repeats", "warmup"),
}


@dataclass(frozen=True)
class WorkloadFamily:
    """A model family and its workloads, declared once in the family's folder (``family.py``): what the registry,
    the command line, the asv suite and the tests read. A family from another package registers itself with an
    entry point in the ``pairbench.workloads`` group naming its WorkloadFamily (see README, "Your own model").

    ``configs`` maps each workload name to its model configuration (see WorkloadSpec.model); ``models`` each
    framework to ``"module:Class"``; ``spec`` holds the WorkloadSpec fields the family's workloads share (lr,
    loss, batch_size, ...). For the asv suite: ``budgets`` maps (task, workload, device kind) to the step counts
    that replace the defaults there, ``infeasible`` to why that combination is not run, and ``skill`` names the
    workloads whose built-in data the skill task trains on.
    """

    name: str
    configs: dict[str, Any]
    models: dict[str, str]
    descriptions: dict[str, str]
    spec: dict[str, Any] = field(default_factory=dict)
    budgets: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)
    infeasible: dict[tuple[str, str, str], str] = field(default_factory=dict)
    skill: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.descriptions) != set(self.configs):
            odd = sorted(set(self.descriptions) ^ set(self.configs))[0]
            raise ValueError(f"family {self.name}: workload {odd!r} needs both a configuration and a description")
        if set(self.models) != set(FRAMEWORKS):
            raise ValueError(f"family {self.name}: models must name a class for each of {', '.join(FRAMEWORKS)}")
        for task, workload, _ in [*self.budgets, *self.infeasible]:
            if workload not in self.configs or task not in BUDGET_FIELDS:
                raise ValueError(f"family {self.name}: budget or infeasibility for unknown ({task}, {workload})")
        if not set(self.skill) <= set(self.configs):
            raise ValueError(f"family {self.name}: skill names workloads it does not declare")
        for task, workload, device in [*self.budgets, *self.infeasible]:
            if device not in DEVICE_KINDS:
                raise ValueError(f"family {self.name}: unknown device kind {device!r} for ({task}, {workload})")
        for key, budget in self.budgets.items():
            if not set(budget) <= set(BUDGET_FIELDS[key[0]]):
                raise ValueError(f"family {self.name}: a {key[0]} budget sets only {', '.join(BUDGET_FIELDS[key[0]])}")
        for workload, cfg in self.configs.items():
            missing = [a for a in MODEL_PROTOCOL if not hasattr(cfg, a)]
            if missing:
                raise ValueError(f"family {self.name}: the configuration of {workload} lacks {', '.join(missing)}")

    def workloads(self) -> dict[str, WorkloadSpec]:
        return {
            name: WorkloadSpec(name, self.name, cfg, dict(self.models), self.descriptions[name], **self.spec)
            for name, cfg in self.configs.items()
        }


@dataclass
class RunConfig:
    """One (workload, framework, device) run, as the worker subprocess receives it."""

    workload: str
    framework: str
    weights: str
    device: str = "cpu"
    precision: str = "fp32"
    mode: str = "eager"
    recompute: bool = False
    threads: int | None = None
    batch_size: int = 2
    warmup_steps: int = 3
    train_steps: int = 20
    forward_steps: int = 20
    seed: int = 0
    power_rate_hz: float = 10.0
    objective: str = "forecast"  # see OBJECTIVES
    task: str = "pair"  # "pair": parity and timing on synthetic batches; "skill": train on data, roll out
    data: dict[str, Any] = field(default_factory=dict)  # the skill task's data set and rollout settings
    model: dict[str, Any] = field(default_factory=dict)
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    # One rank of a data-parallel group: {"backend": collective backend (runners.devices), "world": processes};
    # the launcher's environment gives the rendezvous and this process's rank. Empty: a single-process run.
    distributed: dict[str, Any] = field(default_factory=dict)
    # An exported-graph engine's label (runners.engines.spec; its framework is the graph's source), or None: the
    # framework itself.
    engine: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the worker; ``distributed`` and ``engine`` only where set, so that a framework's
        single-process request is what it was."""
        d = asdict(self)
        if not self.distributed:
            del d["distributed"]
        if self.engine is None:
            del d["engine"]
        return d


def loss_mask(spec: WorkloadSpec, data: dict | None = None) -> np.ndarray | None:
    """Where the loss is taken, (out_chans, lat, lon) of 0 and 1: the model's defined outputs (``output_mask``)
    for a masked loss, times the cells the data has (``data["mask"]``: a .npy file the parent wrote where the data
    has missing cells); None where the loss covers every cell."""
    model = spec.model.output_mask() if spec.loss == "masked_relative_l2" else None
    return _cells(model, np.load(data["mask"]) if data and data.get("mask") else None, spec.model.out_chans)


def scored_mask(spec: WorkloadSpec, data_mask: np.ndarray | None = None) -> np.ndarray | None:
    """Where the outputs are scored, (out_chans, lat, lon) of 0 and 1: where the model defines them (AI-GOMS's ocean
    at each channel's depth) and the data has values at every time (``data_mask``); None for every cell."""
    return _cells(spec.model.output_mask(), data_mask, spec.model.out_chans)


def _cells(model_mask, data_mask, n_out: int) -> np.ndarray | None:
    """The product of the masks that are given (the data's cut to the ``n_out`` output channels), or None."""
    masks = [m for m in (model_mask, None if data_mask is None else data_mask[:n_out]) if m is not None]
    return np.prod(masks, axis=0).astype(np.float32) if masks else None


class Runner(Protocol):
    """What each framework implements; arrays cross the boundary as NumPy on the host."""

    framework: str

    def versions(self) -> dict[str, str]: ...

    def build(self, weights: dict[str, np.ndarray]) -> None: ...

    def put(self, array: np.ndarray) -> Any: ...

    def forward(self, x: Any) -> Any: ...

    def fetch(self, tensor: Any) -> np.ndarray: ...

    def loss_and_grads(self, x: Any, y: Any, token_mask: Any = None) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and the gradient of each parameter the loss reaches; a parameter without one is left out
        where the framework can tell (PyTorch), else comes back as zeros (MindSpore)."""

    def train_step(self, x: Any, y: Any, token_mask: Any = None) -> float: ...

    def synchronize(self) -> None: ...

    def state(self) -> dict[str, np.ndarray]: ...

    # One rank of a data-parallel group (RunConfig.distributed): ``rank`` and ``world`` (0 and 1 alone), the last
    # train_step's averaged gradients, a mean over the ranks, and leaving the group.
    rank: int
    world: int

    def grads(self) -> dict[str, np.ndarray]: ...

    def mean_over_ranks(self, values: list[float]) -> list[float]: ...

    def close(self) -> None: ...
