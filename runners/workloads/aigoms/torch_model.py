"""The AI-GOMS backbone in PyTorch: a Fourier masked autoencoder of FourCastNet's AFNO blocks with a linear
Koopman latent propagator (see :mod:`runners.workloads.aigoms.config` for what is reconstructed and why)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from runners.workloads.aigoms.config import AIGOMSConfig
from runners.workloads.fourcastnet.torch_model import Block, DftTransform, PatchEmbed, check_input, unpatchify


class KoopmanLayer(nn.Module):
    """z + irfft2(K * rfft2(z)): a learned complex factor per kept mode and channel, zero elsewhere."""

    def __init__(self, cfg: AIGOMSConfig):
        super().__init__()
        mh, mw = cfg.koopman_modes
        self.top, self.bottom = cfg.koopman_rows()
        self.weight = nn.Parameter(torch.zeros(2, mh, mw, cfg.embed_dim))
        self.dft = DftTransform(cfg.tokens, *cfg.koopman_spectrum()) if cfg.spectral_transform == "dft" else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # Mixed-precision policy: spectral work in fp32, as in the AFNO filter.
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._propagate(z)

    def _propagate(self, z: torch.Tensor) -> torch.Tensor:
        dtype = z.dtype
        if self.dft is not None:  # the kept modes only, as matrix products (rows in the weight's order)
            sr, si = self.dft(z.float())
            k = self.weight
            return z + self.dft.inverse(sr * k[0] - si * k[1], sr * k[1] + si * k[0]).type(dtype)
        b, h, w, e = z.shape
        wf = w // 2 + 1
        mw = self.weight.shape[2]
        gap = h - self.top - self.bottom
        k = self.weight
        # Place the kept modes (lowest non-negative and negative latitudinal frequencies, lowest zonal ones).
        k = torch.cat([k[:, : self.top], k.new_zeros(2, gap, mw, e), k[:, self.top :]], dim=1)
        k = F.pad(k, (0, 0, 0, wf - mw))
        spec = torch.fft.rfft2(z.float(), dim=(1, 2), norm="ortho")
        sr, si = spec.real, spec.imag
        out = torch.complex(sr * k[0] - si * k[1], sr * k[1] + si * k[0])
        return z + torch.fft.irfft2(out, s=(h, w), dim=(1, 2), norm="ortho").type(dtype)


class MaskedOceanAE(nn.Module):
    """Patch embedding, optional token masking, AFNO encoder, Koopman propagator, AFNO decoder, linear head.

    ``forward(x, token_mask=None)``: ``x`` is (B, in_chans, lat, lon); ``token_mask`` (B, tokens), 1 where a
    patch is hidden, replaces those tokens by the learned mask token before the positional embedding
    (the Fourier blocks need the whole token grid, so masked tokens are replaced rather than dropped).

    Examples
    --------
    >>> from runners.workloads.aigoms.config import CONFIGS
    >>> net = MaskedOceanAE(CONFIGS["aigoms-tiny"])
    >>> net(torch.zeros(1, 19, 32, 64)).shape
    torch.Size([1, 13, 32, 64])
    """

    def __init__(self, cfg: AIGOMSConfig):
        super().__init__()
        self.cfg = cfg
        enc, dec = cfg.encoder_blocks(), cfg.decoder_blocks()
        e, d = cfg.embed_dim, cfg.decoder_embed_dim
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, e))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, e))
        self.patch_embed = PatchEmbed(enc)
        self.blocks = nn.ModuleList(Block(enc) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.koopman = nn.ModuleList(KoopmanLayer(cfg) for _ in range(cfg.koopman_depth))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, d))
        self.decoder_embed = nn.Linear(e, d)
        self.decoder_blocks = nn.ModuleList(Block(dec) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.decoder_pred = nn.Linear(d, cfg.head_out)
        self.recompute = False  # activation recompute of each AFNO block (torch.utils.checkpoint)

    def _run(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            x = checkpoint(blk, x, use_reentrant=False) if self.recompute and torch.is_grad_enabled() else blk(x)
        return x

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        check_input(x, cfg)
        h, w = cfg.tokens
        tokens = self.patch_embed(x)
        if token_mask is not None:
            m = token_mask.to(tokens.dtype).unsqueeze(-1)
            tokens = tokens * (1 - m) + self.mask_token * m
        z = (tokens + self.pos_embed).reshape(x.shape[0], h, w, cfg.embed_dim)
        z = self.norm(self._run(self.blocks, z))
        for layer in self.koopman:
            z = layer(z)
        z = self.decoder_embed(z) + self.decoder_pos_embed.reshape(1, h, w, cfg.decoder_embed_dim)
        z = self.decoder_norm(self._run(self.decoder_blocks, z))
        return unpatchify(self.decoder_pred(z), cfg)
