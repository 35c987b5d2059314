"""FourCastNet's AFNONet in MindSpore (mindspore.nn.Cell), the same network as ``torch_model``.

Parameter names and shapes are the canonical ones of :meth:`FourCastNetConfig.parameter_shapes`.
Uses ``mindspore.nn`` and ``ops`` kernels that exist on CPU, GPU and Ascend alike (the ``mint``
layers have no CPU kernels in MindSpore 2.10). GELU is the exact (erf) form, as in torch.nn.GELU.
"""

from __future__ import annotations

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from runners.workloads.fourcastnet.config import FourCastNetConfig
from runners.workloads.spectral import dft_bases


def zeros_parameter(*shape: int) -> Parameter:
    return Parameter(Tensor(np.zeros(shape, dtype=np.float32)))


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with torch's parameter names (weight, bias)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(dim, dtype=np.float32)))
        self.bias = zeros_parameter(dim)
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        return self.layer_norm(x, self.weight, self.bias)[0]


class DftTransform(nn.Cell):
    """The orthonormal rfft2 of a (B, H, W, C) field at the kept modes only, and its inverse, as real matrix
    products (runners.workloads.spectral): no complex tensor, FFT or pad; the bases are constants."""

    def __init__(self, grid: tuple[int, int], rows, cols):
        super().__init__()
        bases = dft_bases(*grid, rows, cols)
        self.wc, self.ws = Tensor(bases.wc), Tensor(bases.ws)
        self.hc_t, self.hs_t = Tensor(bases.hc_t), Tensor(bases.hs_t)
        self.iwc, self.iws = Tensor(bases.iwc), Tensor(bases.iws)
        self.ihc, self.ihs = Tensor(bases.ihc), Tensor(bases.ihs)

    def construct(self, x):
        """(B, H, W, C) -> real and imaginary parts, each (B, rows, cols, C)."""
        t = x.transpose(0, 3, 1, 2)  # (B, C, H, W)
        ar = ops.matmul(t, self.wc).swapaxes(-1, -2)  # (B, C, cols, H)
        ai = ops.matmul(t, self.ws).swapaxes(-1, -2)
        xr = ops.matmul(ar, self.hc_t) + ops.matmul(ai, self.hs_t)  # (B, C, cols, rows)
        xi = ops.matmul(ai, self.hc_t) - ops.matmul(ar, self.hs_t)
        return xr.transpose(0, 3, 2, 1), xi.transpose(0, 3, 2, 1)

    def inverse(self, yr, yi):
        """Real and imaginary (B, rows, cols, C), zero elsewhere -> the real (B, H, W, C) field."""
        yr, yi = yr.transpose(0, 3, 2, 1), yi.transpose(0, 3, 2, 1)  # (B, C, cols, rows)
        zr = (ops.matmul(yr, self.ihc) - ops.matmul(yi, self.ihs)).swapaxes(-1, -2)  # (B, C, H, cols)
        zi = (ops.matmul(yi, self.ihc) + ops.matmul(yr, self.ihs)).swapaxes(-1, -2)
        return (ops.matmul(zr, self.iwc) + ops.matmul(zi, self.iws)).transpose(0, 2, 3, 1)


class AFNO2D(nn.Cell):
    """Adaptive Fourier neural operator filter over a (B, H, W, C) token grid."""

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        nb, bs = cfg.num_blocks, cfg.block_size
        self.num_blocks, self.block_size = nb, bs
        self.lambd = cfg.sparsity_threshold
        self.relu_shrink = cfg.shrink == "relu"
        rows, cols = cfg.kept_modes()
        self.r0, self.r1, self.c0, self.c1 = rows.start, rows.stop, cols.start, cols.stop
        self.w1 = zeros_parameter(2, nb, bs, bs)
        self.b1 = zeros_parameter(2, nb, bs)
        self.w2 = zeros_parameter(2, nb, bs, bs)
        self.b2 = zeros_parameter(2, nb, bs)
        self.complex = ops.Complex()
        self.use_dft = cfg.spectral_transform == "dft"
        if self.use_dft:
            self.dft = DftTransform(cfg.tokens, *cfg.kept_ranges())

    def _mm(self, x, w):
        """'...bi,bio->...bo' as one batched matmul over the blocks."""
        lead = x.shape[:-2]
        xb = x.reshape(-1, self.num_blocks, x.shape[-1]).swapaxes(0, 1)
        out = ops.bmm(xb, w).swapaxes(0, 1)
        return out.reshape(*lead, self.num_blocks, w.shape[-1])

    def _block_mlp(self, xr, xi):
        """The complex two-layer block MLP with soft shrinkage, on real and imaginary (..., blocks, bs)."""
        o1r = ops.relu(self._mm(xr, self.w1[0]) - self._mm(xi, self.w1[1]) + self.b1[0])
        o1i = ops.relu(self._mm(xi, self.w1[0]) + self._mm(xr, self.w1[1]) + self.b1[1])
        o2r = self._mm(o1r, self.w2[0]) - self._mm(o1i, self.w2[1]) + self.b2[0]
        o2i = self._mm(o1i, self.w2[0]) + self._mm(o1r, self.w2[1]) + self.b2[1]
        return self._shrink(o2r), self._shrink(o2i)

    def _shrink(self, x):
        if self.relu_shrink:  # the same function from two ReLUs (FourCastNetConfig.shrink)
            return ops.relu(x - self.lambd) - ops.relu(-x - self.lambd)
        return ops.softshrink(x, self.lambd)

    def construct(self, x):
        bias = x
        dtype = x.dtype
        x = x.astype(np.float32)
        b, h, w, c = x.shape
        nb, bs = self.num_blocks, self.block_size
        if self.use_dft:  # the kept modes only, as matrix products; nothing outside them is computed
            xr, xi = self.dft(x)
            kr, kc = xr.shape[1], xr.shape[2]
            o2r, o2i = self._block_mlp(xr.reshape(b, kr, kc, nb, bs), xi.reshape(b, kr, kc, nb, bs))
            return self.dft.inverse(o2r.reshape(b, kr, kc, c), o2i.reshape(b, kr, kc, c)).astype(dtype) + bias
        wf = w // 2 + 1
        x = ops.rfft2(x, dim=(1, 2), norm="ortho")
        x = x.reshape(b, h, wf, nb, bs)
        xk = x[:, self.r0 : self.r1, self.c0 : self.c1]
        o2r, o2i = self._block_mlp(ops.real(xk), ops.imag(xk))
        # Modes outside the kept region stay zero, as in the reference's zero-initialised buffers.
        pad = (0, 0, 0, 0, self.c0, wf - self.c1, self.r0, h - self.r1)
        o2r, o2i = ops.pad(o2r, pad), ops.pad(o2i, pad)
        x = self.complex(o2r, o2i).reshape(b, h, wf, c)
        x = ops.irfft2(x, s=(h, w), dim=(1, 2), norm="ortho")
        return x.astype(dtype) + bias


class Mlp(nn.Cell):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Dense(dim, hidden)
        self.act = nn.GELU(approximate=False)
        self.fc2 = nn.Dense(hidden, dim)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Cell):
    """norm -> filter -> skip -> norm -> MLP -> skip (the reference's double skip)."""

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        e = cfg.embed_dim
        self.norm1 = LayerNorm(e, cfg.layer_norm_eps)
        self.filter = AFNO2D(cfg)
        self.norm2 = LayerNorm(e, cfg.layer_norm_eps)
        self.mlp = Mlp(e, cfg.mlp_hidden)

    def construct(self, x):
        x = self.filter(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class PatchProjection(nn.Dense):
    """The patch embedding's convolution (kernel = stride = patch edge) as one matrix product over the flattened
    patches: the same arithmetic, but MindSpore 2.10's CPU Conv2d takes ~60 ms for fourcastnet-small's where
    the product takes ~1 ms (docs/mindspore-performance.md). A Dense cell, so the mixed-precision policy casts
    it like the others; its weight keeps the convolution's (E, C, p, p) shape and name."""

    def __init__(self, in_chans: int, embed_dim: int, p: int):
        super().__init__(in_chans * p * p, embed_dim, has_bias=True)
        self.weight = Parameter(Tensor(np.zeros((embed_dim, in_chans, p, p), dtype=np.float32)), name="weight")
        self.p = p

    def construct(self, x):
        b, c, rows, cols = x.shape
        p = self.p
        h, w = rows // p, cols // p
        patches = x.reshape(b, c, h, p, w, p).transpose(0, 2, 4, 1, 3, 5).reshape(b * h * w, c * p * p)
        weight = self.weight.reshape(self.weight.shape[0], c * p * p).astype(patches.dtype)
        out = self.bias_add(self.matmul(patches, weight), self.bias.astype(patches.dtype))
        return out.reshape(b, h * w, -1)


class PatchEmbed(nn.Cell):
    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        self.proj = PatchProjection(cfg.in_chans, cfg.embed_dim, cfg.patch_size)

    def construct(self, x):
        return self.proj(x)  # (B, tokens, E)


def unpatchify(x, tokens: tuple[int, int], p: int, out_chans: int):
    """Head output (B, h, w, p * p * out_chans) back to fields (B, out_chans, h * p, w * p), as the reference."""
    b = x.shape[0]
    h, w = tokens
    x = x.reshape(b, h, w, p, p, out_chans)
    return x.transpose(0, 5, 1, 3, 2, 4).reshape(b, out_chans, h * p, w * p)


class AFNONet(nn.Cell):
    """FourCastNet: patch embedding, positional embedding, AFNO blocks, linear head, un-patchify.

    Examples
    --------
    >>> from runners.workloads.fourcastnet.config import CONFIGS
    >>> net = AFNONet(CONFIGS["fourcastnet-tiny"])
    >>> net(Tensor(np.zeros((1, 3, 32, 64), np.float32))).shape
    (1, 3, 32, 64)
    """

    def __init__(self, cfg: FourCastNetConfig):
        super().__init__()
        self.cfg = cfg
        self.h, self.w = cfg.tokens
        self.p, self.e, self.out_chans = cfg.patch_size, cfg.embed_dim, cfg.out_chans
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = zeros_parameter(1, cfg.num_tokens, cfg.embed_dim)
        self.blocks = nn.CellList([Block(cfg) for _ in range(cfg.depth)])
        # Present in the reference and its checkpoints, though its forward never applies it.
        self.norm = LayerNorm(cfg.embed_dim, cfg.layer_norm_eps)
        self.head = nn.Dense(cfg.embed_dim, cfg.head_out, has_bias=False)

    def recompute_blocks(self) -> None:
        """Activation recompute of every AFNO block (``Cell.recompute``)."""
        for block in self.blocks:
            block.recompute()

    def construct(self, x):
        b = x.shape[0]
        h, w, p = self.h, self.w, self.p
        x = (self.patch_embed(x) + self.pos_embed).reshape(b, h, w, self.e)
        for blk in self.blocks:
            x = blk(x)
        return unpatchify(self.head(x), (h, w), p, self.out_chans)
