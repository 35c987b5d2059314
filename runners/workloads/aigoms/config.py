"""AI-GOMS backbone configuration: named sizes, channel layout, canonical parameter shapes and analytic FLOPs.

Imports no framework. The study (arXiv 2510.17852) trained AI-GOMS (arXiv 2308.03152) from
``config/Model_202312.yaml`` but did not publish its network module, so the network here is a
reconstruction from the paper's description and that configuration: a Fourier-based masked autoencoder
whose encoder and decoder are stacks of FourCastNet's AFNO blocks over patch tokens, with a Koopman-style
linear latent propagator between them. The parameter names are ours (MAE's, where MAE has the part).
The study's configuration also lists 16 attention heads for encoder and decoder; AFNO token mixing has no
attention, so no parameter depends on them and they are not part of this configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from runners.data.ocean import OCEAN_VARIABLES, channels, ocean_channels, ocean_mask
from runners.spec import FlopCount, ModelConfig
from runners.weights.canonical import init_afno_weights
from runners.workloads.fourcastnet.config import FourCastNetConfig
from runners.workloads.spectral import transform_flops

# The study's 15 depth levels (m) of temperature, salinity and the two current components.
PAPER_DEPTHS_M = (0, 6, 10, 20, 30, 50, 70, 100, 125, 150, 200, 250, 300, 400, 500)


@dataclass(frozen=True)
class AIGOMSConfig(ModelConfig):
    """Hyper-parameters of the AI-GOMS backbone.

    Parameters
    ----------
    img_size, patch_size:
        Grid (latitudes, longitudes) and square patch edge; the token grid is ``img_size / patch_size``.
    depths_m:
        Depth levels (m) of the ocean variables t, s, u, v; outputs are ``4 * len(depths_m) + 1`` channels
        (the levels, then sea-surface height), inputs add the atmospheric forcings and the static field.
    embed_dim, depth:
        Encoder token width and number of AFNO blocks.
    decoder_embed_dim, decoder_depth:
        Decoder token width and number of AFNO blocks.
    koopman_depth:
        Linear Koopman layers between encoder and decoder: each multiplies the latent's spectrum, per
        kept mode and channel, by a learned complex factor and adds the result to the latent.
    modes_h_ratio, modes_w_ratio:
        Fractions of the latitudinal modes and of the ``w // 2 + 1`` zonal modes the Koopman layers act on.
    mlp_ratio, num_blocks, sparsity_threshold, hard_thresholding_fraction, layer_norm_eps, shrink:
        As in FourCastNet's AFNO blocks (encoder and decoder alike).
    mask_ratio:
        Fraction of patch tokens replaced by the learned mask token in masked pre-training (see
        :meth:`random_token_mask`); forecasting runs pass no mask.

    Examples
    --------
    >>> cfg = AIGOMSConfig(img_size=(32, 64), patch_size=4, depths_m=(0, 50), embed_dim=32, depth=1,
    ...                    decoder_embed_dim=64, decoder_depth=1, num_blocks=4)
    >>> cfg.out_chans, cfg.in_chans, cfg.koopman_modes
    (9, 15, (8, 7))
    """

    label = "AI-GOMS"

    img_size: tuple[int, int]
    patch_size: int
    depths_m: tuple[int, ...]
    embed_dim: int
    depth: int
    decoder_embed_dim: int
    decoder_depth: int
    koopman_depth: int = 2
    modes_h_ratio: float = 1.0
    modes_w_ratio: float = 0.8
    mlp_ratio: float = 4.0
    num_blocks: int = 8
    sparsity_threshold: float = 0.01
    hard_thresholding_fraction: float = 1.0
    layer_norm_eps: float = 1e-6
    mask_ratio: float = 0.75
    spectral_transform: str = "fft"  # of the AFNO filters and the Koopman layers (runners.workloads.spectral)
    shrink: str = "softshrink"  # of the AFNO filters: or "relu" (see FourCastNetConfig.shrink)
    # (2026-12-02, 2026-12-06) an FFT or softshrink run's model reads as it did before these settings existed
    added_later = ("spectral_transform", "shrink")

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        object.__setattr__(self, "depths_m", tuple(int(v) for v in self.depths_m))
        if not self.depths_m or list(self.depths_m) != sorted(set(self.depths_m)) or self.depths_m[0] < 0:
            raise ValueError(f"depths_m must be distinct non-negative depths in increasing order, got {self.depths_m}")
        if self.koopman_depth < 0:
            raise ValueError(f"koopman_depth must be >= 0, got {self.koopman_depth}")
        for name in ("modes_h_ratio", "modes_w_ratio"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in [0, 1), got {self.mask_ratio!r}")
        self.encoder_blocks()  # validates the grid, patch, widths and AFNO settings
        self.decoder_blocks()

    # --- channels ------------------------------------------------------------------------------
    @property
    def out_channels(self) -> tuple[str, ...]:
        """t, s, u, v at each depth (e.g. ``t0``, ``s500``), then ``ssh``: the study's order."""
        return ocean_channels(self.depths_m)

    @property
    def in_channels(self) -> tuple[str, ...]:
        return channels(self.depths_m)

    @property
    def out_chans(self) -> int:
        return len(self.out_channels)

    @property
    def in_chans(self) -> int:
        return len(self.in_channels)

    def channel_depths(self) -> np.ndarray:
        """Depth (m) of each output channel; sea-surface height is at 0 m."""
        return np.array([d for _ in OCEAN_VARIABLES for d in self.depths_m] + [0], dtype=np.int64)

    # --- derived sizes -------------------------------------------------------------------------
    def _blocks(self, width: int, depth: int) -> FourCastNetConfig:
        return FourCastNetConfig(
            img_size=self.img_size,
            patch_size=self.patch_size,
            in_chans=self.in_chans,
            out_chans=self.out_chans,
            embed_dim=width,
            depth=max(depth, 1),
            mlp_ratio=self.mlp_ratio,
            num_blocks=self.num_blocks,
            sparsity_threshold=self.sparsity_threshold,
            hard_thresholding_fraction=self.hard_thresholding_fraction,
            layer_norm_eps=self.layer_norm_eps,
            spectral_transform=self.spectral_transform,
            shrink=self.shrink,
        )

    # Built once per configuration (the dataclass is frozen): the models read tokens and head_out in every forward.
    @cached_property
    def _encoder(self) -> FourCastNetConfig:
        return self._blocks(self.embed_dim, self.depth)

    @cached_property
    def _decoder(self) -> FourCastNetConfig:
        return self._blocks(self.decoder_embed_dim, self.decoder_depth)

    def encoder_blocks(self) -> FourCastNetConfig:
        """The AFNO block settings of the encoder (FourCastNet's blocks at ``embed_dim``)."""
        return self._encoder

    def decoder_blocks(self) -> FourCastNetConfig:
        return self._decoder

    @property
    def tokens(self) -> tuple[int, int]:
        return self.encoder_blocks().tokens

    @property
    def num_tokens(self) -> int:
        return self.encoder_blocks().num_tokens

    @property
    def head_out(self) -> int:
        """Width of the prediction head: ``out_chans`` values for each of a patch's pixels."""
        return self.encoder_blocks().head_out

    @property
    def koopman_modes(self) -> tuple[int, int]:
        """(latitudinal, zonal) modes each Koopman layer acts on."""
        h, w = self.tokens
        wf = w // 2 + 1
        return max(1, min(h, round(self.modes_h_ratio * h))), max(1, min(wf, int(self.modes_w_ratio * wf)))

    def koopman_rows(self) -> tuple[int, int]:
        """Kept latitudinal modes as (lowest non-negative, lowest negative) counts in FFT order."""
        mh, _ = self.koopman_modes
        return (mh + 1) // 2, mh // 2

    def koopman_spectrum(self) -> tuple[list[int], range]:
        """The spectrum rows (FFT order) and columns each Koopman layer's factors apply to, in weight order."""
        top, bottom = self.koopman_rows()
        h, _ = self.tokens
        return [*range(top), *range(h - bottom, h)], range(self.koopman_modes[1])

    # --- parameters ----------------------------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical parameter names and shapes, in PyTorch state_dict order (a module's own parameters first)."""
        e, d, p = self.embed_dim, self.decoder_embed_dim, self.patch_size
        mh, mw = self.koopman_modes
        shapes: dict[str, tuple[int, ...]] = {
            "pos_embed": (1, self.num_tokens, e),
            "mask_token": (1, 1, e),
            "decoder_pos_embed": (1, self.num_tokens, d),
            "patch_embed.proj.weight": (e, self.in_chans, p, p),
            "patch_embed.proj.bias": (e,),
        }
        for prefix, cfg, n in (("blocks.", self.encoder_blocks(), self.depth),):
            shapes.update(_block_shapes(cfg, prefix, n))
        shapes.update({"norm.weight": (e,), "norm.bias": (e,)})
        for k in range(self.koopman_depth):
            shapes[f"koopman.{k}.weight"] = (2, mh, mw, e)  # real and imaginary parts per mode and channel
        shapes.update(
            {
                "decoder_embed.weight": (d, e),
                "decoder_embed.bias": (d,),
            }
        )
        shapes.update(_block_shapes(self.decoder_blocks(), "decoder_blocks.", self.decoder_depth))
        shapes.update(
            {
                "decoder_norm.weight": (d,),
                "decoder_norm.bias": (d,),
                "decoder_pred.weight": (self.head_out, d),
                "decoder_pred.bias": (self.head_out,),
            }
        )
        return shapes

    def init_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Initial weights from one NumPy seed (:func:`runners.weights.canonical.init_afno_weights`)."""
        return init_afno_weights(self.parameter_shapes(), seed, self.in_chans * self.patch_size**2)

    def random_token_mask(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """A masked pre-training mask: float32 (batch, tokens), exactly ``round(mask_ratio * tokens)`` ones
        per sample at random positions (MAE's per-sample shuffle), drawn on the host so that both frameworks
        see the same mask."""
        n = self.num_tokens
        k = int(round(self.mask_ratio * n))
        mask = np.zeros((batch_size, n), np.float32)
        for row in mask:
            row[rng.permutation(n)[:k]] = 1.0
        return mask

    # --- where the outputs are defined ---------------------------------------------------------------
    def output_mask(self) -> np.ndarray:
        """Ocean mask of each output channel, float32 (out_chans, lat, lon): 1 where the sea floor lies
        below the channel's depth (sea-surface height: at the surface), from the built-in ocean geometry at
        this grid (the study reads the same kind of mask from ``land_mask.h5``). The loss, the skill scores
        and the rollouts use it; land values are undefined."""
        return ocean_mask(self.img_size, self.channel_depths()).astype(np.float32)

    def builtin_data(self, progress=None):
        """The built-in ocean data at this grid and these depths (:mod:`runners.data.ocean_generator`):
        the output channels, then the forcings and the static field, in :attr:`in_channels` order."""
        from runners.data.ocean_generator import builtin_ocean_dataset

        return builtin_ocean_dataset(self.img_size, self.depths_m, progress=progress)

    # --- FLOPs ---------------------------------------------------------------------------------
    def flops(self) -> FlopCount:
        """Analytic FLOPs per sample, counted as :meth:`FourCastNetConfig.flops` counts them.

        Matrix products: patch embedding, the encoder's and decoder's AFNO blocks (spectral block MLPs over
        the kept modes and token MLPs), the decoder embedding and the prediction head. Transforms: two per
        AFNO block and per Koopman layer, FFTs estimated at 2.5 N log2 N per real 2-D transform and channel,
        or with ``spectral_transform="dft"`` exact matrix products (runners.workloads.spectral). The Koopman
        layers' per-mode products are element-wise and, like norms and activations, left out.
        """
        t, e, d = self.num_tokens, self.embed_dim, self.decoder_embed_dim
        patch = 2 * t * e * self.in_chans * self.patch_size**2
        enc_cfg, dec_cfg = self.encoder_blocks(), self.decoder_blocks()
        enc = _block_matmuls(enc_cfg) * self.depth
        dec = _block_matmuls(dec_cfg) * self.decoder_depth
        rows, cols = self.koopman_spectrum()
        transforms = [
            transform_flops(self.spectral_transform, self.tokens, enc_cfg.kept_region(), e * self.depth),
            transform_flops(self.spectral_transform, self.tokens, (len(rows), len(cols)), e * self.koopman_depth),
            transform_flops(self.spectral_transform, self.tokens, dec_cfg.kept_region(), d * self.decoder_depth),
        ]
        transform = sum(m for m, _ in transforms)
        fft_forward = sum(f for _, f in transforms)
        matmul_forward = patch + enc + 2 * t * e * d + dec + 2 * t * d * self.head_out + transform
        return FlopCount(
            matmul_forward=matmul_forward,
            matmul_train=matmul_forward + 2 * (matmul_forward - transform) - patch + transform,
            fft_forward=fft_forward,
            fft_train=2 * fft_forward,
        )


def _block_shapes(cfg: FourCastNetConfig, prefix: str, depth: int) -> dict[str, tuple[int, ...]]:
    """FourCastNet's per-block parameters, renamed from ``blocks.`` to ``prefix``."""
    return {
        prefix + name[len("blocks.") :]: shape
        for name, shape in cfg.parameter_shapes().items()
        if name.startswith("blocks.") and int(name.split(".")[1]) < depth
    }


def _block_matmuls(cfg: FourCastNetConfig) -> int:
    """Forward matmul FLOPs of one AFNO block: its spectral block MLP and its token MLP."""
    rows, cols = cfg.kept_region()
    spectral = 8 * 2 * rows * cols * cfg.num_blocks * cfg.block_size**2
    return spectral + 2 * 2 * cfg.num_tokens * cfg.embed_dim * cfg.mlp_hidden


CONFIGS: dict[str, AIGOMSConfig] = {
    # CI: 3 depth levels (13 ocean channels, 19 inputs) on the 32 x 64 grid of fourcastnet-tiny.
    "aigoms-tiny": AIGOMSConfig(
        img_size=(32, 64), patch_size=4, depths_m=(0, 50, 200), embed_dim=32, depth=2,
        decoder_embed_dim=64, decoder_depth=1, num_blocks=4,
    ),
    # CPU benchmarks: 5 levels (21 ocean channels) on 64 x 128.
    "aigoms-small": AIGOMSConfig(
        img_size=(64, 128), patch_size=4, depths_m=(0, 10, 50, 100, 300), embed_dim=128, depth=4,
        decoder_embed_dim=256, decoder_depth=2, num_blocks=8,
    ),
    # The study's configuration: 1/4 degree, 15 levels (61 outputs, 67 inputs), patch 8.
    "aigoms-paper": AIGOMSConfig(
        img_size=(720, 1440), patch_size=8, depths_m=PAPER_DEPTHS_M, embed_dim=512, depth=12,
        decoder_embed_dim=1024, decoder_depth=8, num_blocks=8,
    ),
}  # fmt: skip
