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
from runners.workloads.spectral import dft_bases


class DftTransform(nn.Module):
    """The orthonormal rfft2 of a (B, H, W, C) field at the kept modes only, and its inverse, as real matrix
    products (runners.workloads.spectral); the bases are constant buffers, not parameters or state."""

    def __init__(self, grid: tuple[int, int], rows, cols):
        super().__init__()
        for name, array in dft_bases(*grid, rows, cols).arrays().items():
            self.register_buffer(name, torch.from_numpy(array), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W, C) -> real and imaginary parts, each (B, rows, cols, C)."""
        t = x.permute(0, 3, 1, 2)  # (B, C, H, W)
        ar, ai = (t @ self.wc).transpose(-1, -2), (t @ self.ws).transpose(-1, -2)  # (B, C, cols, H)
        xr = ar @ self.hc_t + ai @ self.hs_t  # (B, C, cols, rows)
        xi = ai @ self.hc_t - ar @ self.hs_t
        return xr.permute(0, 3, 2, 1), xi.permute(0, 3, 2, 1)

    def inverse(self, yr: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        """Real and imaginary (B, rows, cols, C), zero elsewhere -> the real (B, H, W, C) field."""
        yr, yi = yr.permute(0, 3, 2, 1), yi.permute(0, 3, 2, 1)  # (B, C, cols, rows)
        zr = (yr @ self.ihc - yi @ self.ihs).transpose(-1, -2)  # (B, C, H, cols)
        zi = (yi @ self.ihc + yr @ self.ihs).transpose(-1, -2)
        return (zr @ self.iwc + zi @ self.iws).permute(0, 2, 3, 1)


class AFNO2D(nn.Module):
    """Adaptive Fourier neural operator filter over a (B, H, W, C) token grid."""

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        nb, bs = cfg.num_blocks, cfg.block_size
        self.num_blocks, self.block_size = nb, bs
        self.lambd = cfg.sparsity_threshold
        self.relu_shrink = cfg.shrink == "relu"
        self.rows, self.cols = cfg.kept_modes()
        self.w1 = nn.Parameter(torch.zeros(2, nb, bs, bs))
        self.b1 = nn.Parameter(torch.zeros(2, nb, bs))
        self.w2 = nn.Parameter(torch.zeros(2, nb, bs, bs))
        self.b2 = nn.Parameter(torch.zeros(2, nb, bs))
        self.dft = None
        if cfg.spectral_transform == "dft":
            self.dft = DftTransform(cfg.tokens, *cfg.kept_ranges())

    def _block_mlp(self, xr: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The complex two-layer block MLP with soft shrinkage, on real and imaginary (..., blocks, bs)."""
        mm = "...bi,bio->...bo"
        o1r = F.relu(torch.einsum(mm, xr, self.w1[0]) - torch.einsum(mm, xi, self.w1[1]) + self.b1[0])
        o1i = F.relu(torch.einsum(mm, xi, self.w1[0]) + torch.einsum(mm, xr, self.w1[1]) + self.b1[1])
        o2r = torch.einsum(mm, o1r, self.w2[0]) - torch.einsum(mm, o1i, self.w2[1]) + self.b2[0]
        o2i = torch.einsum(mm, o1i, self.w2[0]) + torch.einsum(mm, o1r, self.w2[1]) + self.b2[1]
        return self._shrink(o2r), self._shrink(o2i)

    def _shrink(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_shrink:  # the same function from two ReLUs (FourCastNetConfig.shrink)
            return F.relu(x - self.lambd) - F.relu(-x - self.lambd)
        return F.softshrink(x, lambd=self.lambd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Mixed-precision policy: the Fourier filter always runs in fp32 (as MindSpore's side does).
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._filter(x)

    def _filter(self, x: torch.Tensor) -> torch.Tensor:
        bias = x
        dtype = x.dtype
        x = x.float()
        b, h, w, c = x.shape
        nb, bs = self.num_blocks, self.block_size
        if self.dft is not None:  # the kept modes only, as matrix products; nothing outside them is computed
            xr, xi = self.dft(x)
            kr, kc = xr.shape[1:3]
            o2r, o2i = self._block_mlp(xr.reshape(b, kr, kc, nb, bs), xi.reshape(b, kr, kc, nb, bs))
            return self.dft.inverse(o2r.reshape(b, kr, kc, c), o2i.reshape(b, kr, kc, c)).type(dtype) + bias
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        wf = w // 2 + 1
        x = x.reshape(b, h, wf, nb, bs)
        xk = x[:, self.rows, self.cols]
        o2 = torch.stack(self._block_mlp(xk.real, xk.imag), dim=-1)
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
