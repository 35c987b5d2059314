"""Model weights as framework-neutral NumPy arrays: validation, digest and the two file formats.

Both runners start from the same arrays: the canonical safetensors file written here (names as in the
reference implementation), or an original checkpoint saved by ``torch.save`` and read by
:mod:`runners.weights.checkpoint` (no pickled code is executed). Works for any model configuration that
provides ``parameter_shapes()`` and ``to_dict()``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from runners.errors import PairbenchError
from runners.options import input_problem
from runners.weights.checkpoint import Bfloat16Array, CheckpointError, bfloat16_to_float32, read_torch_checkpoint

FORMAT = "pairbench-weights/1"
# What the runs start from is float32. Half-precision weights are widened to it exactly; float64 ones are rounded
# to it (the record says which); integers and booleans are no weights and are refused.
FLOAT_DTYPES = {"float32": "", "float16": "widened to float32 exactly", "bfloat16": "widened to float32 exactly",
                "float64": "rounded to float32"}  # fmt: skip


class WeightsMismatch(ValueError):
    """A set of weights does not fit a configuration."""


def trunc_normal(rng: np.random.Generator, shape, std: float, bound: float = 2.0) -> np.ndarray:
    """Normal(0, std) truncated to [-bound, bound] by resampling, as timm's trunc_normal_ does."""
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > bound
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > bound
    return out


def init_afno_weights(shapes: dict[str, tuple[int, ...]], seed: int, patch_fan_in: int) -> dict[str, np.ndarray]:
    """Initial weights drawn the way the AFNO reference initialises them, in ``shapes`` order, from one seed.

    Linear weights (every 2-D ``weight``), positional embeddings and mask tokens: truncated normal, std 0.02;
    biases 0; LayerNorm scale 1; spectral weights (``.filter.``, ``koopman.``) 0.02 * N(0, 1); the
    patch-embedding convolution keeps PyTorch's default, uniform in +-1/sqrt(fan_in) for weight and bias.
    """
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(patch_fan_in)
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("pos_embed", "decoder_pos_embed", "mask_token") or (leaf == "weight" and len(shape) == 2):
            arr = trunc_normal(rng, shape, 0.02)
        elif name.startswith("patch_embed."):
            arr = rng.uniform(-bound, bound, size=shape)
        elif ".filter." in name or name.startswith("koopman."):
            arr = 0.02 * rng.standard_normal(shape)
        elif leaf == "weight":  # LayerNorm scale
            arr = np.ones(shape)
        else:  # LayerNorm and Linear biases
            arr = np.zeros(shape)
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def check_weights(cfg, tensors: dict[str, np.ndarray], source: str) -> None:
    """Raise :class:`WeightsMismatch` naming the first parameter that does not fit ``cfg``."""
    expected = cfg.parameter_shapes()
    for name, shape in expected.items():
        if name not in tensors:
            raise WeightsMismatch(f"{source} lacks parameter '{name}' of shape {shape}")
        got = tuple(tensors[name].shape)
        if got != shape:
            raise WeightsMismatch(f"{source}: parameter '{name}' has shape {got}, the configuration expects {shape}")
    for name in tensors:
        if name not in expected:
            raise WeightsMismatch(f"{source} has parameter '{name}', which the configuration does not have")


def weights_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_weights(path: Path, cfg, tensors: dict[str, np.ndarray]) -> str:
    """Write the canonical safetensors file; returns the weights digest stored in its metadata."""
    from safetensors.numpy import save

    check_weights(cfg, tensors, "weights to save")
    digest = weights_digest(tensors)
    meta = {"format": FORMAT, "config": json.dumps(cfg.to_dict()), "sha256": digest}
    path = Path(path)
    data = save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, meta)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
    except OSError as exc:  # a full disk, a read-only folder: one sentence, no partial file left
        tmp.unlink(missing_ok=True)
        raise PairbenchError(f"cannot write the weights file {path}: {os.strerror(exc.errno or 0)}") from None
    return digest


def _strip_prefix(state: dict[str, np.ndarray], prefix: str = "module.") -> dict[str, np.ndarray]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def read_reference_checkpoint(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Parameters of a reference checkpoint, each as (the dtype it was saved in, its array; bfloat16 already
    widened): a ``torch.save`` dict with ``model_state`` (NVlabs FourCastNet) or a bare state dict; a DDP
    ``module.`` prefix is dropped."""
    obj = read_torch_checkpoint(path)
    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path} holds no 'model_state' mapping of tensors, so it is not a model checkpoint")
    return {
        k: ("bfloat16" if isinstance(v, Bfloat16Array) else v.dtype.name, np.asarray(v))
        for k, v in _strip_prefix(state).items()
    }


def as_float32(source: str, tensors: dict[str, tuple[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], str]:
    """``tensors`` (name: (dtype name, array)) as float32 arrays, and what was done to them ("" when nothing): a
    tensor of a dtype outside FLOAT_DTYPES is refused in one sentence naming it and its dtype."""
    for name, (dtype, _) in tensors.items():
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{source}: tensor '{name}' is {dtype}; weights must be floating point "
                f"({', '.join(FLOAT_DTYPES)}), so this file holds no weights to start from"
            )
    out = {
        name: np.array(bfloat16_to_float32(a) if d == "bfloat16" and a.dtype == np.uint16 else a, dtype=np.float32)
        for name, (d, a) in tensors.items()
    }
    done = sorted({d for d, _ in tensors.values() if FLOAT_DTYPES[d]})
    return out, "; ".join(f"{d} {FLOAT_DTYPES[d]}" for d in done)


def read_weights(path: Path, cfg) -> tuple[dict[str, np.ndarray], str]:
    """Float32 weights from a safetensors file or a reference checkpoint, checked against ``cfg``, and the
    source a record names: the path, with any widening or rounding of the file's dtypes in parentheses."""
    from runners.weights.safetensors_file import read_safetensors

    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"weights file {path} is a directory: name the safetensors file or checkpoint in it")
    if problem := input_problem(path, "weights file"):  # before opening it: a FIFO or a device would block
        raise FileNotFoundError(problem)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"weights file {path} cannot be read ({exc.strerror or exc})") from None
    if magic == b"PK\x03\x04":
        named = read_reference_checkpoint(path)
    else:
        try:
            named = read_safetensors(path)
        except (CheckpointError, OSError) as exc:
            raise CheckpointError(
                f"{path} is neither a safetensors file nor a PyTorch zip checkpoint ({exc})"
            ) from None
    tensors, done = as_float32(str(path), named)
    check_weights(cfg, tensors, str(path))
    return tensors, f"{path} ({done})" if done else str(path)


def load_weights(path: Path, cfg) -> dict[str, np.ndarray]:
    """Float32 weights from a safetensors file or a reference checkpoint, checked (see :func:`read_weights`)."""
    return read_weights(path, cfg)[0]


def starting_weights(cfg, weights: str | Path | None, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """What a run starts from: the ``weights`` file (see :func:`read_weights`), else ``cfg.init_weights(seed)``;
    with the source its records name."""
    if weights:
        return read_weights(Path(weights), cfg)
    tensors = cfg.init_weights(seed)
    check_weights(cfg, tensors, f"init_weights(seed={seed})")
    return tensors, f"init_weights(seed={seed})"
