"""The AI-GOMS backbone in MindSpore, the same network as :mod:`runners.workloads.aigoms.torch_model`, built from the
AFNO cells of FourCastNet's MindSpore model."""

from __future__ import annotations

import numpy as np
from mindspore import nn, ops

from runners.workloads.aigoms.config import AIGOMSConfig
from runners.workloads.fourcastnet.mindspore_model import (
    Block,
    DftTransform,
    LayerNorm,
    PatchEmbed,
    unpatchify,
    zeros_parameter,
)


class KoopmanLayer(nn.Cell):
    """z + irfft2(K * rfft2(z)): a learned complex factor per kept mode and channel, zero elsewhere."""

    def __init__(self, cfg: AIGOMSConfig):
        super().__init__()
        mh, mw = cfg.koopman_modes
        self.top, self.bottom = cfg.koopman_rows()
        h, w = cfg.tokens
        self.gap, self.wf, self.mw, self.e = h - self.top - self.bottom, w // 2 + 1, mw, cfg.embed_dim
        self.weight = zeros_parameter(2, mh, mw, cfg.embed_dim)
        self.complex = ops.Complex()
        self.use_dft = cfg.spectral_transform == "dft"
        if self.use_dft:
            self.dft = DftTransform(cfg.tokens, *cfg.koopman_spectrum())

    def construct(self, z):
        dtype = z.dtype
        if self.use_dft:  # the kept modes only, as matrix products (rows in the weight's order)
            sr, si = self.dft(z.astype(np.float32))
            k = self.weight
            return z + self.dft.inverse(sr * k[0] - si * k[1], sr * k[1] + si * k[0]).astype(dtype)
        b, h, w, e = z.shape
        k = self.weight
        gap = ops.zeros((2, self.gap, self.mw, self.e), k.dtype)
        k = ops.cat([k[:, : self.top], gap, k[:, self.top :]], axis=1)
        k = ops.pad(k, (0, 0, 0, self.wf - self.mw))
        spec = ops.rfft2(z.astype(np.float32), dim=(1, 2), norm="ortho")
        sr, si = ops.real(spec), ops.imag(spec)
        out = self.complex(sr * k[0] - si * k[1], sr * k[1] + si * k[0])
        return z + ops.irfft2(out, s=(h, w), dim=(1, 2), norm="ortho").astype(dtype)


class MaskedOceanAE(nn.Cell):
    """Patch embedding, optional token masking, AFNO encoder, Koopman propagator, AFNO decoder, linear head.

    Examples
    --------
    >>> from mindspore import Tensor
    >>> from runners.workloads.aigoms.config import CONFIGS
    >>> net = MaskedOceanAE(CONFIGS["aigoms-tiny"])
    >>> net(Tensor(np.zeros((1, 19, 32, 64), np.float32))).shape
    (1, 13, 32, 64)
    """

    def __init__(self, cfg: AIGOMSConfig):
        super().__init__()
        self.cfg = cfg
        enc, dec = cfg.encoder_blocks(), cfg.decoder_blocks()
        e, d = cfg.embed_dim, cfg.decoder_embed_dim
        self.h, self.w = cfg.tokens
        self.p, self.e, self.d, self.out_chans = cfg.patch_size, e, d, cfg.out_chans
        self.pos_embed = zeros_parameter(1, cfg.num_tokens, e)
        self.mask_token = zeros_parameter(1, 1, e)
        self.patch_embed = PatchEmbed(enc)
        self.blocks = nn.CellList([Block(enc) for _ in range(cfg.depth)])
        self.norm = LayerNorm(e, cfg.layer_norm_eps)
        self.koopman = nn.CellList([KoopmanLayer(cfg) for _ in range(cfg.koopman_depth)])
        self.decoder_pos_embed = zeros_parameter(1, cfg.num_tokens, d)
        self.decoder_embed = nn.Dense(e, d)
        self.decoder_blocks = nn.CellList([Block(dec) for _ in range(cfg.decoder_depth)])
        self.decoder_norm = LayerNorm(d, cfg.layer_norm_eps)
        self.decoder_pred = nn.Dense(d, cfg.head_out)

    def recompute_blocks(self) -> None:
        """Activation recompute of every AFNO block, encoder and decoder (``Cell.recompute``)."""
        for block in (*self.blocks, *self.decoder_blocks):
            block.recompute()

    def construct(self, x, token_mask=None):
        b = x.shape[0]
        h, w, p = self.h, self.w, self.p
        tokens = self.patch_embed(x)
        if token_mask is not None:
            m = token_mask.astype(tokens.dtype).expand_dims(-1)
            tokens = tokens * (1 - m) + self.mask_token * m
        z = (tokens + self.pos_embed).reshape(b, h, w, self.e)
        for blk in self.blocks:
            z = blk(z)
        z = self.norm(z)
        for layer in self.koopman:
            z = layer(z)
        z = self.decoder_embed(z) + self.decoder_pos_embed.reshape(1, h, w, self.d)
        for blk in self.decoder_blocks:
            z = blk(z)
        return unpatchify(self.decoder_pred(self.decoder_norm(z)), (h, w), p, self.out_chans)
