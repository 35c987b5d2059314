"""Model weights as framework-neutral NumPy arrays: validation, digest and the two file formats.

Both runners start from the same arrays: the canonical safetensors file written here (names as in the
reference implementation), or an original checkpoint saved by ``torch.save`` and read by
:mod:`runners.weights.checkpoint` (no pickled code is executed). Works for any model configuration that
provides ``parameter_shapes()`` and ``to_dict()``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from runners.weights.checkpoint import CheckpointError, read_torch_checkpoint

FORMAT = "pairbench-weights/1"


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
    from safetensors.numpy import save_file

    check_weights(cfg, tensors, "weights to save")
    digest = weights_digest(tensors)
    meta = {"format": FORMAT, "config": json.dumps(cfg.to_dict()), "sha256": digest}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(tmp), meta)
    tmp.replace(path)
    return digest


def _strip_prefix(state: dict[str, np.ndarray], prefix: str = "module.") -> dict[str, np.ndarray]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def read_reference_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """Parameters of a reference checkpoint: a ``torch.save`` dict with ``model_state`` (NVlabs
    FourCastNet) or a bare state dict; a DDP ``module.`` prefix is dropped."""
    obj = read_torch_checkpoint(path)
    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path} holds no 'model_state' mapping of tensors, so it is not a model checkpoint")
    return {k: v.astype(np.float32, copy=False) for k, v in _strip_prefix(state).items()}


def load_weights(path: Path, cfg) -> dict[str, np.ndarray]:
    """Load weights from a canonical safetensors file or a reference checkpoint and check them."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"weights file {path} is a directory: name the safetensors file or checkpoint in it")
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":
        tensors = read_reference_checkpoint(path)
    else:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path} is neither a safetensors file nor a PyTorch zip checkpoint ({exc})"
            ) from None
    check_weights(cfg, tensors, str(path))
    return tensors
