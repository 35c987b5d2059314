"""FourCastNet's AFNONet in PyTorch (torch.nn), equivalent to NVlabs ``networks/afnonet.py``.

Parameter names and shapes are the canonical ones of :meth:`FourCastNetConfig.parameter_shapes`.
Dropout and drop-path are omitted: the reference trains with both rates at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from runners.workloads.fourcastnet.config import FourCastNetConfig


class AFNO2D(nn.Module):
    """Adaptive Fourier neural operator filter over a (B, H, W, C) token grid."""

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        nb, bs = cfg.num_blocks, cfg.block_size
        self.num_blocks, self.block_size = nb, bs
        self.lambd = cfg.sparsity_threshold
        self.rows, self.cols = cfg.kept_modes()
        self.w1 = nn.Parameter(torch.zeros(2, nb, bs, bs))
        self.b1 = nn.Parameter(torch.zeros(2, nb, bs))
        self.w2 = nn.Parameter(torch.zeros(2, nb, bs, bs))
        self.b2 = nn.Parameter(torch.zeros(2, nb, bs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Mixed-precision policy: the Fourier filter always runs in fp32 (as MindSpore's side does).
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._filter(x)

    def _filter(self, x: torch.Tensor) -> torch.Tensor:
        bias = x
        dtype = x.dtype
        x = x.float()
        b, h, w, c = x.shape
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        wf = w // 2 + 1
        x = x.reshape(b, h, wf, self.num_blocks, self.block_size)
        xk = x[:, self.rows, self.cols]
        xr, xi = xk.real, xk.imag
        mm = "...bi,bio->...bo"
        o1r = F.relu(torch.einsum(mm, xr, self.w1[0]) - torch.einsum(mm, xi, self.w1[1]) + self.b1[0])
        o1i = F.relu(torch.einsum(mm, xi, self.w1[0]) + torch.einsum(mm, xr, self.w1[1]) + self.b1[1])
        o2r = torch.einsum(mm, o1r, self.w2[0]) - torch.einsum(mm, o1i, self.w2[1]) + self.b2[0]
        o2i = torch.einsum(mm, o1i, self.w2[0]) + torch.einsum(mm, o1r, self.w2[1]) + self.b2[1]
        o2 = F.softshrink(torch.stack([o2r, o2i], dim=-1), lambd=self.lambd)
        # Modes outside the kept region stay zero, as in the reference's zero-initialised buffers.
        pad = (0, 0, 0, 0, 0, 0, self.cols.start, wf - self.cols.stop, self.rows.start, h - self.rows.stop)
        o2 = F.pad(o2, pad)
        x = torch.view_as_complex(o2.contiguous()).reshape(b, h, wf, c)
        x = torch.fft.irfft2(x, s=(h, w), dim=(1, 2), norm="ortho")
        return x.type(dtype) + bias


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """norm -> filter -> skip -> norm -> MLP -> skip (the reference's double skip)."""

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        e = cfg.embed_dim
        self.norm1 = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.filter = AFNO2D(cfg)
        self.norm2 = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(e, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.filter(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class PatchEmbed(nn.Module):
    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        p = cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=p, stride=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def check_input(x: torch.Tensor, cfg) -> None:
    """Refuse an input that does not fit the configuration's channels and grid, naming both."""
    b, c, hh, ww = x.shape
    if (hh, ww) != cfg.img_size or c != cfg.in_chans:
        raise ValueError(f"input of shape {tuple(x.shape)} does not fit {cfg.in_chans} x {cfg.img_size}")


def unpatchify(x: torch.Tensor, cfg) -> torch.Tensor:
    """Head output (B, h, w, p * p * out_chans) back to fields (B, out_chans, h * p, w * p), as the reference."""
    b = x.shape[0]
    (h, w), p = cfg.tokens, cfg.patch_size
    x = x.reshape(b, h, w, p, p, cfg.out_chans)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, cfg.out_chans, h * p, w * p)


class AFNONet(nn.Module):
    """FourCastNet: patch embedding, positional embedding, AFNO blocks, linear head, un-patchify.

    Examples
    --------
    >>> from runners.workloads.fourcastnet.config import CONFIGS
    >>> net = AFNONet(CONFIGS["fourcastnet-tiny"])
    >>> net(torch.zeros(1, 3, 32, 64)).shape
    torch.Size([1, 3, 32, 64])
    """

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        # Present in the reference and its checkpoints, though its forward never applies it.
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(cfg.embed_dim, cfg.head_out, bias=False)
        self.recompute = False  # activation recompute of each block (torch.utils.checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        check_input(x, cfg)
        h, w = cfg.tokens
        x = (self.patch_embed(x) + self.pos_embed).reshape(x.shape[0], h, w, cfg.embed_dim)
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=False) if self.recompute and torch.is_grad_enabled() else blk(x)
        return unpatchify(self.head(x), cfg)
