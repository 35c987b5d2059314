"""The spectral transform of the AFNO filter and the Koopman layer, chosen in the model configuration
(``spectral_transform``, part of a run's identity):

- ``"fft"``: ``rfft2`` / ``irfft2`` (orthonormal), the reference's implementation;
- ``"dft"``: the same transform as real matrix products, computed for the kept modes only. Hard
  thresholding keeps few modes, the products map onto matrix units (Ascend's Cube, tensor cores), and no
  complex tensor is ever made (MindSpore's complex kernels are slow on CPU, and their compiled gradients
  are inconsistent there; see docs/mindspore-performance.md).

Both give the orthonormal ``rfft2`` of a real (h, w) field restricted to rows R and columns C of its
spectrum, and the ``irfft2`` of a spectrum that is zero outside them. For a field laid out (..., h, w):

    forward, along w:   Ar = x @ wc,    Ai = x @ ws                  (..., h, |C|)
    forward, along h:   Xr = hc A r + hs Ai,   Xi = hc Ai - hs Ar     (rows R; as right products below)
    inverse, along h:   Zr = hc' Yr - hs' Yi,  Zi = hc' Yi + hs' Yr
    inverse, along w:   y = Zr @ iwc + Zi @ iws                       (c2r: weight 1 for the zero and Nyquist
                                                                       columns, 2 for the others)

with ``hc[k, n] = cos(2 pi k n / h) / sqrt(h)``, ``hs`` the sine, ``wc[n, k] = cos(2 pi k n / w) / sqrt(w)``,
``ws = -sin(...) / sqrt(w)``. The imaginary parts of the zero and Nyquist columns drop out of the inverse on
their own (their sine is zero), as ``irfft`` ignores them. This module is NumPy only; each framework's model
turns the bases into constant tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPECTRAL_TRANSFORMS = ("fft", "dft")
# The soft shrinkage of the filtered spectrum (``shrink`` in a model configuration): the framework's softshrink, or
# the same function from two ReLUs, softshrink(x, l) = relu(x - l) - relu(-x - l), which every graph exporter
# knows (MindSpore 2.10 cannot export SoftShrink to ONNX).
SHRINKS = ("softshrink", "relu")


def check_transform(name: str) -> None:
    if name not in SPECTRAL_TRANSFORMS:
        raise ValueError(f"spectral_transform must be one of {', '.join(SPECTRAL_TRANSFORMS)}, got {name!r}")


def check_shrink(name: str) -> None:
    if name not in SHRINKS:
        raise ValueError(f"shrink must be one of {', '.join(SHRINKS)}, got {name!r}")


@dataclass(frozen=True)
class DftBases:
    """Real bases of the kept modes (rows ``rows`` of h, columns ``cols`` of ``w // 2 + 1``), float32.

    Shapes: ``wc``, ``ws`` (w, |C|); ``hc_t``, ``hs_t`` (h, |R|) (transposed for right products);
    ``iwc``, ``iws`` (|C|, w); ``ihc``, ``ihs`` (|R|, h)."""

    wc: np.ndarray
    ws: np.ndarray
    hc_t: np.ndarray
    hs_t: np.ndarray
    iwc: np.ndarray
    iws: np.ndarray
    ihc: np.ndarray
    ihs: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def dft_bases(h: int, w: int, rows, cols) -> DftBases:
    """The bases for an (h, w) grid keeping spectrum rows ``rows`` and columns ``cols`` (ranges or index lists)."""
    rows, cols = np.asarray(list(rows), dtype=np.float64), np.asarray(list(cols), dtype=np.float64)
    if rows.size == 0 or cols.size == 0 or rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() > w // 2:
        raise ValueError(f"kept modes out of range for a {h} x {w} grid: rows {rows}, columns {cols}")
    n_h, n_w = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    ang_w = 2.0 * np.pi * np.outer(n_w, cols) / w  # (w, |C|)
    ang_h = 2.0 * np.pi * np.outer(n_h, rows) / h  # (h, |R|)
    weight = np.where((cols == 0) | ((w % 2 == 0) & (cols == w // 2)), 1.0, 2.0)  # c2r weights
    sw, sh = np.sqrt(w), np.sqrt(h)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return DftBases(
        wc=f32(np.cos(ang_w) / sw),
        ws=f32(-np.sin(ang_w) / sw),
        hc_t=f32(np.cos(ang_h) / sh),
        hs_t=f32(np.sin(ang_h) / sh),
        iwc=f32(weight[:, None] * np.cos(ang_w).T / sw),
        iws=f32(-weight[:, None] * np.sin(ang_w).T / sw),
        ihc=f32(np.cos(ang_h).T / sh),
        ihs=f32(np.sin(ang_h).T / sh),
    )


def forward_numpy(x: np.ndarray, b: DftBases) -> tuple[np.ndarray, np.ndarray]:
    """Reference of the forward transform for a (..., h, w) field: (real, imaginary), each (..., |R|, |C|)."""
    ar, ai = x @ b.wc, x @ b.ws  # (..., h, |C|)
    ar_t, ai_t = np.swapaxes(ar, -1, -2), np.swapaxes(ai, -1, -2)  # (..., |C|, h)
    xr = ar_t @ b.hc_t + ai_t @ b.hs_t
    xi = ai_t @ b.hc_t - ar_t @ b.hs_t
    return np.swapaxes(xr, -1, -2), np.swapaxes(xi, -1, -2)


def inverse_numpy(yr: np.ndarray, yi: np.ndarray, b: DftBases) -> np.ndarray:
    """Reference of the inverse transform of a (..., |R|, |C|) spectrum: the real (..., h, w) field."""
    yr_t, yi_t = np.swapaxes(yr, -1, -2), np.swapaxes(yi, -1, -2)  # (..., |C|, |R|)
    zr = yr_t @ b.ihc - yi_t @ b.ihs  # (..., |C|, h)
    zi = yi_t @ b.ihc + yr_t @ b.ihs
    return np.swapaxes(zr, -1, -2) @ b.iwc + np.swapaxes(zi, -1, -2) @ b.iws


def transform_flops(transform: str, grid: tuple[int, int], kept: tuple[int, int], channels: int) -> tuple[float, float]:
    """(matrix-product FLOPs, FFT FLOPs) of one forward and one inverse transform of ``channels`` fields on
    ``grid`` keeping ``kept`` (rows, columns) modes. FFTs are estimated at 2.5 N log2 N per real 2-D
    transform of N points; the DFT's products are exact (forward: 2 along w, 4 along h; the inverse alike)."""
    (h, w), (kr, kc) = grid, kept
    if transform == "dft":
        return float(channels * (2 * 2 * h * w * kc + 4 * 2 * h * kr * kc) * 2), 0.0
    n = h * w
    return 0.0, (2 * 2.5 * n * math.log2(n) * channels if n > 1 else 0.0)
