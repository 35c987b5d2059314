"""What an engine is, as text: ``NAME[:key=value[:key=value...]]``, parsed into an :class:`EngineSpec`. Imports no
framework and no runtime.

Names: ``onnxruntime`` (an ONNX file run by ONNX Runtime), ``mindir`` (a MindIR file run by MindSpore's graph
runtime), and ``torch`` and ``mindspore``, the frameworks themselves (no exported graph). Keys:

- ``source``: the framework whose model is exported (torch | mindspore); onnxruntime's default torch, mindir's only
  mindspore; the frameworks are their own source;
- ``spectral``: the model's spectral transform (fft | dft; runners.workloads.spectral); default: the model's own;
- ``shrink``: the model's soft shrinkage (softshrink | relu); default: the model's own;
- ``provider`` (onnxruntime only): cpu | cuda | tensorrt | cann; default: from the device (cpu: cpu, cuda: cuda,
  ascend: cann; tensorrt only when asked).

Examples
--------
>>> parse_engine("onnxruntime:spectral=dft").label
'onnxruntime:source=torch:spectral=dft'
>>> parse_engine("mindir").resolve({"spectral_transform": "fft", "shrink": "softshrink"}, "cpu").label
'mindir:source=mindspore:spectral=fft:shrink=softshrink'
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from runners.errors import PairbenchError
from runners.spec import FRAMEWORKS
from runners.workloads.spectral import SHRINKS, SPECTRAL_TRANSFORMS

ENGINES = ("onnxruntime", "mindir")
NAMES = (*FRAMEWORKS, *ENGINES)
# The sources each name may export from (the first is the default).
SOURCES = {"onnxruntime": ("torch", "mindspore"), "mindir": ("mindspore",), "torch": ("torch",),
           "mindspore": ("mindspore",)}  # fmt: skip
# ONNX Runtime's execution providers by the grammar's name, the device kind each runs on, and the default per kind.
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "cann": "CANNExecutionProvider",
}
PROVIDER_DEVICE = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda", "cann": "ascend"}
DEFAULT_PROVIDER = {"cpu": "cpu", "cuda": "cuda", "ascend": "cann"}
CHOICES = {"source": FRAMEWORKS, "spectral": SPECTRAL_TRANSFORMS, "shrink": SHRINKS, "provider": tuple(ORT_PROVIDERS)}
KEYS = tuple(CHOICES)  # the order of the label
# The model configuration's field each formulation key overrides.
MODEL_FIELDS = {"spectral": "spectral_transform", "shrink": "shrink"}
MAX_TEXT = 200


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its name, the framework it exports from, the model formulation (None: the model's own) and, for
    onnxruntime, the execution provider (None: from the device)."""

    name: str
    source: str
    spectral: str | None = None
    shrink: str | None = None
    provider: str | None = None

    @property
    def is_framework(self) -> bool:
        """The framework itself: no exported graph."""
        return self.name in FRAMEWORKS

    @property
    def label(self) -> str:
        """The canonical text: every setting that is known named, in one order (two spellings of one engine give one
        label); the frameworks' own source is left implicit. It parses back to this engine."""
        parts = [self.name]
        for key in KEYS:
            value = getattr(self, key)
            if value is not None and not (key == "source" and self.is_framework):
                parts.append(f"{key}={value}")
        return ":".join(parts)

    def model_overrides(self) -> dict[str, str]:
        """The model configuration's settings this engine sets (an empty dict keeps the model's own)."""
        return {field: getattr(self, key) for key, field in MODEL_FIELDS.items() if getattr(self, key) is not None}

    def resolve(self, model, device_kind: str) -> EngineSpec:
        """This engine with every default filled in: the formulation from ``model`` (a model configuration or its
        dict) where not set, and the provider from ``device_kind``; a provider for another kind of device is one
        sentence."""
        get = model.get if isinstance(model, dict) else lambda k, d=None: getattr(model, k, d)
        changes = {key: get(field) for key, field in MODEL_FIELDS.items() if getattr(self, key) is None}
        changes = {k: v for k, v in changes.items() if v is not None}
        if self.name == "onnxruntime":
            provider = self.provider or DEFAULT_PROVIDER.get(device_kind)
            if provider is None or PROVIDER_DEVICE[provider] != device_kind:
                raise PairbenchError(
                    f"engine {self.label} cannot run on a {device_kind} device: the {provider or 'default'} provider "
                    f"runs on {PROVIDER_DEVICE.get(provider, 'no such device')}"
                )
            changes["provider"] = provider
        return replace(self, **changes)


def _refuse(text: str, why: str) -> PairbenchError:
    return PairbenchError(f"engine '{text:.{MAX_TEXT}}' {why}; use NAME[:key=value...] with NAME one of "
                          f"{', '.join(NAMES)} and keys {', '.join(KEYS)}")  # fmt: skip


def parse_engine(text) -> EngineSpec:
    """The engine ``text`` names (see the module's grammar); anything else is one sentence (PairbenchError)."""
    if not isinstance(text, str):
        raise PairbenchError(f"an engine is text, not {type(text).__name__}")
    if len(text) > MAX_TEXT or not text.isprintable():
        raise _refuse(text.encode("unicode_escape").decode("ascii"), "is not a short line of printable text")
    name, *items = [part.strip().lower() for part in text.strip().split(":")]
    if name not in NAMES:
        raise _refuse(text, f"names no engine ({name!r})")
    settings: dict[str, str] = {}
    for item in items:
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key or not value:
            raise _refuse(text, f"has {item!r} where a key=value setting belongs")
        if key not in CHOICES:
            raise _refuse(text, f"has the unknown key {key!r}")
        if key in settings:
            raise _refuse(text, f"sets {key} twice")
        if value not in CHOICES[key]:
            raise _refuse(text, f"sets {key} to {value!r}, not one of {', '.join(CHOICES[key])}")
        settings[key] = value
    source = settings.pop("source", SOURCES[name][0])
    if source not in SOURCES[name]:
        raise _refuse(text, f"cannot have source {source}: {name} exports from {', '.join(SOURCES[name])} only")
    if "provider" in settings and name != "onnxruntime":
        raise _refuse(text, "sets a provider, which only onnxruntime has")
    return EngineSpec(name, source, **settings)


def label_values(label: str) -> tuple[str, list[str]]:
    """An engine label's name and its settings' values in the label's order (``mindir:source=mindspore:spectral=dft``:
    ``("mindir", ["mindspore", "dft"])``): how the label is shortened in file names and reports."""
    name, *settings = label.split(":")
    return name, [setting.partition("=")[2] for setting in settings]


def formulated(spec, label: str | None):
    """The workload ``spec`` (a runners.spec.WorkloadSpec) in the formulation the engine ``label`` exports (its
    spectral transform and soft shrinkage); ``spec`` itself for None, a framework's own run."""
    return spec if label is None else spec.overridden(parse_engine(label).model_overrides())
