"""FourCastNet (AFNO) configuration: named sizes, canonical parameter shapes and analytic FLOPs.

Imports no framework. The parameter names are those of NVlabs FourCastNet ``networks/afnonet.py``
(without the ``module.`` prefix that DistributedDataParallel adds to its checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.spec import FlopCount, ModelConfig
from runners.weights.canonical import init_afno_weights
from runners.workloads.spectral import check_shrink, check_transform, transform_flops


@dataclass(frozen=True)
class FourCastNetConfig(ModelConfig):
    """Hyper-parameters of an AFNONet.

    Parameters
    ----------
    img_size:
        Grid (latitudes, longitudes) after cropping; both divisible by ``patch_size``.
    patch_size:
        Square patch edge; the token grid is ``img_size / patch_size``.
    in_chans, out_chans:
        Input and output channels (FourCastNet: 20 and 20).
    embed_dim:
        Token width; divisible by ``num_blocks``.
    depth:
        Number of AFNO blocks.
    mlp_ratio:
        Hidden width of each block's MLP over ``embed_dim``.
    num_blocks:
        Blocks of the block-diagonal complex MLP in the Fourier filter.
    sparsity_threshold:
        Softshrink lambda applied to the filtered spectrum.
    shrink:
        How the soft shrinkage is computed: ``"softshrink"`` (the framework's own) or ``"relu"`` (the same
        function from two ReLUs, which graph exporters know; runners.workloads.spectral.SHRINKS).
    hard_thresholding_fraction:
        Fraction of Fourier modes kept, in (0, 1].
    layer_norm_eps:
        LayerNorm epsilon (1e-6 in the reference).

    Examples
    --------
    >>> cfg = FourCastNetConfig(img_size=(32, 64), patch_size=4, in_chans=3, out_chans=3,
    ...                         embed_dim=64, depth=2, num_blocks=4)
    >>> cfg.tokens
    (8, 16)
    """

    label = "FourCastNet"

    img_size: tuple[int, int]
    patch_size: int
    in_chans: int
    out_chans: int
    embed_dim: int
    depth: int
    mlp_ratio: float = 4.0
    num_blocks: int = 8
    sparsity_threshold: float = 0.01
    hard_thresholding_fraction: float = 1.0
    layer_norm_eps: float = 1e-6
    spectral_transform: str = "fft"  # or "dft": the filter's transform as matrix products (runners.workloads.spectral)
    shrink: str = "softshrink"  # or "relu": relu(x - l) - relu(-x - l), the export-friendly formulation
    # (2026-12-02, 2026-12-06) an FFT or softshrink run's model reads as it did before these settings existed
    added_later = ("spectral_transform", "shrink")

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        check_transform(self.spectral_transform)
        check_shrink(self.shrink)
        positive = {
            "patch_size": self.patch_size,
            "in_chans": self.in_chans,
            "out_chans": self.out_chans,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_blocks": self.num_blocks,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if len(self.img_size) != 2 or min(self.img_size) <= 0:
            raise ValueError(f"img_size must be two positive integers, got {self.img_size!r}")
        for edge in self.img_size:
            if edge % self.patch_size:
                raise ValueError(f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}")
        if self.embed_dim % self.num_blocks:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_blocks {self.num_blocks}")
        if not 0.0 < self.hard_thresholding_fraction <= 1.0:
            raise ValueError(f"hard_thresholding_fraction must lie in (0, 1], got {self.hard_thresholding_fraction!r}")
        if self.mlp_ratio <= 0 or self.sparsity_threshold < 0 or self.layer_norm_eps <= 0:
            raise ValueError("mlp_ratio and layer_norm_eps must be positive, sparsity_threshold >= 0")
        if self.spectral_transform == "dft" and 0 in self.kept_region():
            raise ValueError(
                f"hard_thresholding_fraction {self.hard_thresholding_fraction} keeps no spectral mode of the "
                f"{self.tokens[0]} x {self.tokens[1]} token grid, and the dft transform needs at least one"
            )

    # --- derived sizes -------------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[int, int]:
        """Token grid (h, w)."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    @property
    def num_tokens(self) -> int:
        h, w = self.tokens
        return h * w

    @property
    def block_size(self) -> int:
        return self.embed_dim // self.num_blocks

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def head_out(self) -> int:
        return self.out_chans * self.patch_size * self.patch_size

    def kept_modes(self) -> tuple[slice, slice]:
        """Rows and columns of the rfft2 spectrum that the filter's MLP processes.

        Mirrors the reference exactly: ``total = h // 2 + 1`` and ``kept = int(total * fraction)``
        select rows ``total - kept : total + kept`` and columns ``:kept`` (column count is set by the
        latitude count, so on a 1:2 grid the highest zonal wavenumbers are always dropped).
        """
        h, w = self.tokens
        total = h // 2 + 1
        kept = int(total * self.hard_thresholding_fraction)
        rows = slice(*slice(total - kept, total + kept).indices(h)[:2])
        cols = slice(*slice(0, kept).indices(w // 2 + 1)[:2])
        return rows, cols

    def kept_ranges(self) -> tuple[range, range]:
        """:meth:`kept_modes` as index ranges (what the DFT bases are built for)."""
        rows, cols = self.kept_modes()
        return range(rows.start, rows.stop), range(cols.start, cols.stop)

    def kept_region(self) -> tuple[int, int]:
        rows, cols = self.kept_modes()
        return rows.stop - rows.start, cols.stop - cols.start

    # --- parameters ----------------------------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical parameter names and shapes, in the order of the reference's state_dict."""
        e, bs, hid = self.embed_dim, self.block_size, self.mlp_hidden
        p = self.patch_size
        shapes: dict[str, tuple[int, ...]] = {
            "pos_embed": (1, self.num_tokens, e),
            "patch_embed.proj.weight": (e, self.in_chans, p, p),
            "patch_embed.proj.bias": (e,),
        }
        for i in range(self.depth):
            b = f"blocks.{i}."
            shapes.update(
                {
                    b + "norm1.weight": (e,),
                    b + "norm1.bias": (e,),
                    b + "filter.w1": (2, self.num_blocks, bs, bs),
                    b + "filter.b1": (2, self.num_blocks, bs),
                    b + "filter.w2": (2, self.num_blocks, bs, bs),
                    b + "filter.b2": (2, self.num_blocks, bs),
                    b + "norm2.weight": (e,),
                    b + "norm2.bias": (e,),
                    b + "mlp.fc1.weight": (hid, e),
                    b + "mlp.fc1.bias": (hid,),
                    b + "mlp.fc2.weight": (e, hid),
                    b + "mlp.fc2.bias": (e,),
                }
            )
        shapes.update({"norm.weight": (e,), "norm.bias": (e,), "head.weight": (self.head_out, e)})
        return shapes

    def init_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Initial weights drawn as the reference initialises them
        (:func:`runners.weights.canonical.init_afno_weights`)."""
        return init_afno_weights(self.parameter_shapes(), seed, self.in_chans * self.patch_size**2)

    # --- FLOPs ---------------------------------------------------------------------------------
    def flops(self) -> FlopCount:
        """Analytic FLOPs per sample (one multiply-add = 2 FLOPs).

        Matrix products (the patch-embedding convolution, the spectral block MLP over the kept modes,
        the token MLPs and the head) are counted exactly. FFTs are estimated at 2.5 N log2 N per real
        2-D transform of N points and channel; with ``spectral_transform="dft"`` the transforms are matrix
        products, counted exactly (runners.workloads.spectral.transform_flops). Element-wise work (norms,
        activations, adds) is left out, as MFU conventions do.
        """
        t, e, c = self.num_tokens, self.embed_dim, self.in_chans
        patch = 2 * t * e * c * self.patch_size**2
        rows, cols = self.kept_region()
        # 4 real einsums per complex layer, 2 layers, each 2 * modes * blocks * bs * bs FLOPs.
        spectral = 8 * 2 * rows * cols * self.num_blocks * self.block_size**2
        mlp = 2 * 2 * t * e * self.mlp_hidden
        head = 2 * t * e * self.head_out
        transform, fft = transform_flops(self.spectral_transform, self.tokens, (rows, cols), e)
        matmul_forward = patch + self.depth * (spectral + mlp + transform) + head
        # Backward: input and weight gradients for every product (2x forward), except that the patch
        # embedding needs no input gradient and the DFT's constant bases no weight gradient; each FFT's
        # gradient is one FFT of the same size.
        matmul_backward = 2 * (matmul_forward - self.depth * transform) - patch + self.depth * transform
        return FlopCount(
            matmul_forward=matmul_forward,
            matmul_train=matmul_forward + matmul_backward,
            fft_forward=self.depth * fft,
            fft_train=2 * self.depth * fft,
        )

    def builtin_data(self, progress=None):
        """The built-in training data at this grid (the barotropic trajectory, :mod:`runners.data.builtin`)."""
        from runners.data.builtin import builtin_dataset

        return builtin_dataset(self.img_size, progress=progress)


CONFIGS: dict[str, FourCastNetConfig] = {
    # CI and demo default: a training step of batch 2 takes a few tens of ms on 2 CPU cores.
    "fourcastnet-tiny": FourCastNetConfig(
        img_size=(32, 64), patch_size=4, in_chans=3, out_chans=3, embed_dim=64, depth=2, num_blocks=4
    ),
    # CPU benchmarks: 64 x 128 grid, 512 tokens of width 256, 4 blocks.
    "fourcastnet-small": FourCastNetConfig(
        img_size=(64, 128), patch_size=4, in_chans=3, out_chans=3, embed_dim=256, depth=4, num_blocks=8
    ),
    # The paper's network: 20 ERA5 channels at 0.25 degrees (721st row cropped), patch 8.
    "fourcastnet-era5": FourCastNetConfig(
        img_size=(720, 1440), patch_size=8, in_chans=20, out_chans=20, embed_dim=768, depth=12, num_blocks=8
    ),
}
