"""The options of each experiment, defined once: the command line fills them (its defaults are these), and
the experiments, the asv suite and the tests take them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from runners.devices import parse_device
from runners.spec import FRAMEWORKS, MODES, OBJECTIVES, PRECISIONS, PairbenchError, check_framework

DEFAULT_WORKLOAD = "fourcastnet-tiny"
DEFAULT_FORECAST_HOURS = 240.0  # a ten-day forecast, the default of ``pairbench forecast``


@dataclass
class PairOptions:
    workload: str = DEFAULT_WORKLOAD
    frameworks: tuple[str, ...] = FRAMEWORKS
    device: str = "cpu"
    precision: str = "fp32"
    mode: str = "eager"
    objective: str = "forecast"
    recompute: bool = False
    threads: int | None = None
    batch_size: int | None = None
    warmup_steps: int = 3
    train_steps: int = 20
    forward_steps: int = 20
    seed: int | None = None
    weights: str | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0
    model: dict = field(default_factory=dict)
    resume: bool = False

    def validate(self) -> None:
        parse_device(self.device)
        if self.precision not in PRECISIONS:
            raise PairbenchError(f"unknown precision '{self.precision}'; choose from {', '.join(PRECISIONS)}")
        if self.mode not in MODES:
            raise PairbenchError(f"unknown mode '{self.mode}'; choose from {', '.join(MODES)}")
        if self.objective not in OBJECTIVES:
            raise PairbenchError(f"unknown objective '{self.objective}'; choose from {', '.join(OBJECTIVES)}")
        if self.resume and self.seed is None:
            raise PairbenchError("--resume needs --seed, so that the runs already done can be recognised")
        for fw in self.frameworks:
            check_framework(fw)
        if len(set(self.frameworks)) != len(self.frameworks):
            raise PairbenchError("each framework may be named once")
        minimum = {"warmup_steps": 0, "train_steps": 1, "forward_steps": 1}
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise PairbenchError(f"{name.replace('_', '-')} must be at least {least}")
        if self.batch_size is not None and self.batch_size < 1:
            raise PairbenchError("batch-size must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise PairbenchError("threads must be at least 1")
        check_common(self)


@dataclass
class SkillOptions:
    workload: str = DEFAULT_WORKLOAD
    frameworks: tuple[str, ...] = FRAMEWORKS
    device: str = "cpu"
    batch_size: int = 8
    train_steps: int = 400
    lr: float = 2e-3
    n_init: int = 16
    n_lead: int = 8
    seed: int | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0
    model: dict = field(default_factory=dict)
    data: object = None  # a runners.data.dataset.DataRequest (--data); the workload's built-in data when None
    target_rmse: str | None = None  # VAR@LEAD=VALUE: train until the validation RMSE reaches it (train_steps: budget)
    check_every: int = 25  # steps between validation checks of the target


@dataclass
class ForecastOptions:
    """``pairbench forecast``: ``n_lead`` autoregressive steps (None: ten days at the workload's time step) for
    ``batch_size`` forecasts at once (ensemble members or initial conditions), timed ``repeats`` times after the
    first forecast and ``warmup`` untimed ones."""

    workload: str = DEFAULT_WORKLOAD
    frameworks: tuple[str, ...] = FRAMEWORKS
    device: str = "cpu"
    precision: str = "fp32"
    mode: str = "eager"
    batch_size: int = 1
    n_lead: int | None = None
    repeats: int = 5
    warmup: int = 1
    threads: int | None = None
    seed: int | None = None
    weights: str | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0
    model: dict = field(default_factory=dict)
    data: object = None  # a runners.data.dataset.DataRequest: initial conditions from data; synthetic when None

    def validate(self) -> None:
        parse_device(self.device)
        for fw in self.frameworks:
            check_framework(fw)
        if len(set(self.frameworks)) != len(self.frameworks):
            raise PairbenchError("each framework may be named once")
        if self.precision not in PRECISIONS:
            raise PairbenchError(f"unknown precision '{self.precision}'; choose from {', '.join(PRECISIONS)}")
        if self.mode not in MODES:
            raise PairbenchError(f"unknown mode '{self.mode}'; choose from {', '.join(MODES)}")
        least = {"batch_size": 1, "repeats": 1, "warmup": 0, "n_lead": 1}
        for name, low in least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise PairbenchError(f"{name.replace('_', '-')} must be at least {low}, got {value}")
        if self.threads is not None and self.threads < 1:
            raise PairbenchError("threads must be at least 1")
        check_common(self)


def check_common(opts) -> None:
    """What every experiment's options must satisfy: a seed NumPy accepts, a positive time-out, and a results
    directory that is a directory."""
    if opts.seed is not None and not 0 <= opts.seed < 2**63:
        raise PairbenchError(f"seed must be a whole number from 0 to 2^63 - 1, got {opts.seed}")
    if not opts.timeout_s > 0:
        raise PairbenchError(f"timeout must be a positive number of seconds, got {opts.timeout_s:g}")
    if Path(opts.results_dir).exists() and not Path(opts.results_dir).is_dir():
        raise PairbenchError(f"results directory {opts.results_dir} is a file, not a directory")


# ``pairbench diagnose``: each side is a framework and its settings, ``framework[:key=value,...]``.
SIDE_KEYS = ("mode", "precision", "spectral")


@dataclass(frozen=True)
class Side:
    """One side of a diagnosis: a framework, its mode and precision, and its spectral transform (None: the
    workload's own)."""

    framework: str
    mode: str = "eager"
    precision: str = "fp32"
    spectral: str | None = None

    @property
    def label(self) -> str:
        """The side as ``parse_side`` reads it, every setting named."""
        spectral = f",spectral={self.spectral}" if self.spectral else ""
        return f"{self.framework}:mode={self.mode},precision={self.precision}{spectral}"


def parse_side(text: str) -> Side:
    """``framework[:key=value,...]`` (keys: SIDE_KEYS; ',' or ':' between settings) as a Side; anything else is one
    sentence."""
    if not str(text).isprintable():
        raise PairbenchError("it holds characters that cannot be printed (a line break, a control character)")
    framework, _, rest = str(text).strip().partition(":")
    check_framework(framework.strip())
    values: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.replace(":", ",").split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if key not in SIDE_KEYS or not eq or not value:
            raise PairbenchError(f"'{item}' is not key=value with a key of {', '.join(SIDE_KEYS)}")
        if key in values:
            raise PairbenchError(f"{key} is named twice")
        values[key] = value
    return Side(framework.strip(), **values)


@dataclass
class DiagnoseOptions:
    """``pairbench diagnose``: the same weights and input batch through side ``a`` and side ``b`` (see parse_side),
    compared layer by layer."""

    workload: str = DEFAULT_WORKLOAD
    a: str = "torch"
    b: str = "mindspore"
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    weights: str | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0
    model: dict = field(default_factory=dict)

    def sides(self) -> tuple[Side, Side]:
        return parse_side(self.a), parse_side(self.b)

    def validate(self) -> None:
        """This command's options, then each side's settings, by the rules of a paired run's (PairOptions)."""
        common = PairOptions(
            workload=self.workload, device=self.device, threads=self.threads, batch_size=self.batch_size,
            seed=self.seed, results_dir=self.results_dir, timeout_s=self.timeout_s,
        )  # fmt: skip
        common.validate()
        for name, text in (("a", self.a), ("b", self.b)):
            try:
                side = parse_side(text)
                replace(common, frameworks=(side.framework,), precision=side.precision, mode=side.mode).validate()
            except PairbenchError as exc:
                raise PairbenchError(f"side {name} {text!r}: {exc}") from None
