"""The options of each experiment, defined once: the command line fills them (its defaults are these), and
the experiments, the asv suite and the tests take them."""

from __future__ import annotations

import errno
import math
import numbers
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from runners.devices import parse_device
from runners.errors import PairbenchError
from runners.spec import FRAMEWORKS, MODES, OBJECTIVES, PRECISIONS, check_framework

DEFAULT_WORKLOAD = "fourcastnet-tiny"
DEFAULT_FORECAST_HOURS = 240.0  # a ten-day forecast, the default of ``pairbench forecast``
DEFAULT_CHECK_EVERY = 25  # steps between the checks of a skill run's --target-rmse

# The bounds of the counting options, by field: (least, most). The maxima lie far above any run here (the skill
# budget of 400 steps, a ten-day forecast of 40 leads) and far below what would keep a worker busy for days.
MAX_STEPS = 10**7
MAX_BATCH = 2**16
MAX_THREADS = 4096
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a week per framework run
# --require-quiet N: a run timed on a busy machine is run again up to N more times (metrics.load's verdict).
MAX_QUIET_REPEATS = 10
QUIET_WAIT_S = 60.0  # how long --require-quiet waits for a quiet machine before each attempt
BOUNDS = {
    "warmup_steps": (0, MAX_STEPS), "train_steps": (1, MAX_STEPS), "forward_steps": (1, MAX_STEPS),
    "batch_size": (1, MAX_BATCH), "threads": (1, MAX_THREADS), "n_init": (1, MAX_STEPS), "n_lead": (1, MAX_STEPS),
    "repeats": (1, MAX_STEPS), "warmup": (0, MAX_STEPS), "check_every": (1, MAX_STEPS),
    "require_quiet": (0, MAX_QUIET_REPEATS), "nproc": (1, MAX_THREADS),
}  # fmt: skip
# Command-line names of option fields that differ from the field's name.
ARG_OF = {"timeout_s": "timeout", "engines": "engine"}


def flag(name: str) -> str:
    """The command-line option of the option field ``name`` (``train_steps``: ``--train-steps``)."""
    return "--" + ARG_OF.get(name, name).replace("_", "-")


def check_count(name: str, value) -> int:
    """``value`` of the counting option field ``name`` if it is a whole number within BOUNDS, else one sentence
    naming the option."""
    least, most = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PairbenchError(f"{flag(name)} must be a whole number, got {str(value)[:40]}")
    if value < least:
        raise PairbenchError(f"{flag(name)} must be at least {least}, got {value}")
    if value > most:
        raise PairbenchError(f"{flag(name)} must be at most {most}, got {str(value)[:40]}")
    return int(value)


def check_counts(opts) -> None:
    """Every counting option of ``opts`` (None: not set) within BOUNDS."""
    for name in BOUNDS:
        if getattr(opts, name, None) is not None:
            check_count(name, getattr(opts, name))


def check_choices(opts) -> None:
    """The device, each framework named once, and (where ``opts`` has them) precision and mode."""
    parse_device(opts.device)
    for fw in opts.frameworks:
        check_framework(fw)
    if len(set(opts.frameworks)) != len(opts.frameworks):
        raise PairbenchError("each framework may be named once")
    if getattr(opts, "precision", PRECISIONS[0]) not in PRECISIONS:
        raise PairbenchError(f"unknown precision '{opts.precision}'; choose from {', '.join(PRECISIONS)}")
    if getattr(opts, "mode", MODES[0]) not in MODES:
        raise PairbenchError(f"unknown mode '{opts.mode}'; choose from {', '.join(MODES)}")


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)  # fmt: skip


def input_problem(path, what: str, directory: bool = False) -> str | None:
    """Why ``path`` cannot be read as ``what`` (a regular file; a directory too where ``directory``), found
    without opening it, so that a FIFO or a device never blocks a read; None when it can be."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist"
        return f"{what} {path} does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{what} {path} is a symbolic link loop"
        return f"{what} {path} cannot be read ({exc.strerror or exc})"
    except ValueError as exc:  # a NUL byte in the path
        return f"{what} {str(path)!r} is not a usable path ({exc})"
    if stat.S_ISREG(mode) or (directory and stat.S_ISDIR(mode)):
        return None
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "something else")
    return f"{what} {path} is {kind}, not a regular file"


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
    require_quiet: int = 0
    model: dict = field(default_factory=dict)
    resume: bool = False

    def validate(self) -> None:
        check_choices(self)
        if self.objective not in OBJECTIVES:
            raise PairbenchError(f"unknown objective '{self.objective}'; choose from {', '.join(OBJECTIVES)}")
        if self.resume and self.seed is None:
            raise PairbenchError("--resume needs --seed, so that the runs already done can be recognised")
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
    require_quiet: int = 0
    model: dict = field(default_factory=dict)
    data: object = None  # a runners.data.dataset.DataRequest (--data); the workload's built-in data when None
    target_rmse: str | None = None  # VAR@LEAD=VALUE: train until the validation RMSE reaches it (train_steps: budget)
    check_every: int | None = None  # steps between validation checks of the target (None: DEFAULT_CHECK_EVERY)

    @property
    def check_interval(self) -> int:
        """Steps between the checks of the target."""
        return DEFAULT_CHECK_EVERY if self.check_every is None else self.check_every

    def validate(self) -> None:
        check_choices(self)
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
            raise PairbenchError(f"--lr must be a finite positive learning rate, got {lr}")
        if self.check_every is not None and self.target_rmse is None:
            raise PairbenchError(
                "--check-every says how often --target-rmse is checked, and --target-rmse was not given"
            )
        check_common(self)


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
    require_quiet: int = 0
    model: dict = field(default_factory=dict)
    data: object = None  # a runners.data.dataset.DataRequest: initial conditions from data; synthetic when None
    # What runs the forecasts (runners.engines.spec: torch, mindspore, onnxruntime[:...], mindir[:...]); empty: the
    # frameworks themselves. An exported graph's source framework runs too, as its reference.
    engines: tuple[str, ...] = ()

    def validate(self) -> None:
        check_choices(self)
        check_common(self)


@dataclass
class DataParallelOptions:
    """``pairbench run --nproc N`` (``--nnodes``): each framework trained data-parallel over ``nproc`` processes per
    node with global batch ``batch_size``, beside one process with the same global batch; fp32 eager forecast
    steps on synthetic batches."""

    workload: str = DEFAULT_WORKLOAD
    frameworks: tuple[str, ...] = FRAMEWORKS
    device: str = "cpu"
    nproc: int = 2
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    batch_size: int | None = None  # None: two samples per process
    warmup_steps: int = 3
    train_steps: int = 20
    threads: int | None = None
    seed: int | None = None
    weights: str | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0

    @property
    def topology(self) -> Topology:
        return Topology(self.nnodes, self.node_rank, self.master_addr, self.master_port)

    @property
    def world(self) -> int:
        """The processes over every node."""
        return self.nproc * self.nnodes

    @property
    def global_batch(self) -> int:
        return self.batch_size or 2 * self.world

    def validate(self) -> None:
        check_choices(self)
        check_count("nproc", self.nproc)
        check_common(self)
        self.topology.check()
        check_split(self.global_batch, self.world)


def check_split(global_batch: int, nproc: int) -> int:
    """The per-rank batch; a global batch that does not split evenly is refused."""
    if nproc < 1:
        raise PairbenchError(f"the number of processes must be at least 1, got {nproc}")
    if global_batch < 1 or global_batch % nproc:
        raise PairbenchError(
            f"global batch {global_batch} cannot be split evenly over {nproc} processes; use a multiple of {nproc}"
        )
    return global_batch // nproc


@dataclass(frozen=True)
class Topology:
    """Where the ranks of one data-parallel job are: ``nnodes`` nodes of ``nproc`` processes each, this one being
    ``node_rank``, all meeting at ``master_addr:master_port`` (node 0's address). One node on loopback by default."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None  # None: a free loopback port (one node only)

    def check(self) -> None:
        if self.nnodes < 1:
            raise PairbenchError(f"--nnodes must be at least 1, got {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise PairbenchError(f"--node-rank must be from 0 to {self.nnodes - 1}, got {self.node_rank}")
        if self.master_port is None and self.nnodes > 1:
            raise PairbenchError("a run over several nodes needs --master-port, the same on every node")
        if self.master_port is not None and not 1 <= self.master_port <= 65535:
            raise PairbenchError(f"--master-port must be from 1 to 65535, got {self.master_port}")

    def ranks(self, nproc: int) -> range:
        """The global ranks of this node's processes."""
        return range(self.node_rank * nproc, (self.node_rank + 1) * nproc)

    def endpoint(self, port: int) -> str:
        return f"{self.master_addr}:{port}"


def check_common(opts) -> None:
    """What every experiment's options must satisfy: counts within BOUNDS, a seed NumPy accepts, a positive time-out
    of at most MAX_TIMEOUT_S, and a results directory that is a directory."""
    check_counts(opts)
    if opts.seed is not None and not 0 <= opts.seed < 2**63:
        raise PairbenchError(f"--seed must be a whole number from 0 to 2^63 - 1, got {opts.seed}")
    timeout = opts.timeout_s
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise PairbenchError(f"--timeout must be a positive number of seconds, got {timeout}")
    if not timeout <= MAX_TIMEOUT_S:
        raise PairbenchError(f"--timeout must be at most {MAX_TIMEOUT_S:g} s (a week), got {timeout}")
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
