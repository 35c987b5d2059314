"""Built-in dataset with real dynamics: forced-dissipative barotropic vorticity on a beta-plane.

    d(zeta)/dt + J(psi, zeta) + beta d(psi)/dx = F - mu zeta - nu (-lap)^4 zeta,   zeta = lap(psi)

solved pseudo-spectrally (2/3 de-aliasing, classical RK4) on a doubly periodic channel of aspect 1:2,
the geometry of the model grids. It is the standard model of mid-latitude Rossby-wave turbulence:
nonlinear advection, westward-propagating Rossby waves and an energy cascade held statistically steady
by a fixed large-scale forcing and linear drag. Channels are u, v (from psi) and relative vorticity.

Deterministic: the same parameters give the same bytes (NumPy FFT, float64 integration, float32 out).
The plane has equal-area cells, so its skill weights are uniform, not cos(latitude).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runners.data.files import npy_problem, say_regenerating

GENERATOR_VERSION = "barotropic-beta-plane/1"
CHANNELS = ("u", "v", "vo")


@dataclass(frozen=True)
class BarotropicConfig:
    """Parameters of one trajectory; all nondimensional (domain 4 pi x 2 pi)."""

    nlat: int = 64
    nlon: int = 128
    n_steps: int = 1200  # saved states ("6-hourly" model steps)
    substeps: int = 8  # RK4 steps per saved state
    dt: float = 0.025
    beta: float = 2.0
    drag: float = 0.04
    hyperviscosity_damping: float = 2.0  # e-folding rate of the smallest resolved scale
    forcing_amplitude: float = 0.6
    forcing_wavenumber: tuple[float, float] = (3.0, 5.0)
    spinup_steps: int = 200  # saved-step equivalents discarded before the trajectory starts
    seed: int = 20261124

    def __post_init__(self) -> None:
        if self.nlon != 2 * self.nlat or self.nlat < 8 or self.nlat % 2:
            raise ValueError(f"grid must be even and 1:2 (nlat x 2 nlat), got {self.nlat} x {self.nlon}")
        if self.n_steps < 2 or self.substeps < 1 or self.dt <= 0:
            raise ValueError("n_steps >= 2, substeps >= 1 and dt > 0 are required")

    def digest(self) -> str:
        blob = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Spectral:
    def __init__(self, cfg: BarotropicConfig):
        ny, nx = cfg.nlat, cfg.nlon
        self.kx = np.fft.rfftfreq(nx, d=1.0 / nx) * (2 * np.pi / (4 * np.pi))  # domain length 4 pi
        self.ky = np.fft.fftfreq(ny, d=1.0 / ny) * (2 * np.pi / (2 * np.pi))  # domain length 2 pi
        KX, KY = np.meshgrid(self.kx, self.ky)
        self.ikx, self.iky = 1j * KX, 1j * KY
        self.k2 = KX**2 + KY**2
        self.inv_k2 = np.where(self.k2 > 0, -1.0 / np.where(self.k2 > 0, self.k2, 1.0), 0.0)
        kmax2 = (KX.max() ** 2 + np.abs(KY).max() ** 2) / 1.0
        self.hyper = cfg.hyperviscosity_damping * (self.k2 / kmax2) ** 4
        self.dealias = (np.abs(KX) < (2 / 3) * np.abs(KX).max() + 1e-12) & (
            np.abs(KY) < (2 / 3) * np.abs(KY).max() + 1e-12
        )
        self.shape = (ny, nx)

    def to_grid(self, spec):
        return np.fft.irfft2(spec, s=self.shape)

    def to_spec(self, grid):
        return np.fft.rfft2(grid)


def _forcing(cfg: BarotropicConfig, sp: _Spectral) -> np.ndarray:
    """A fixed random vorticity forcing on the ring k in ``forcing_wavenumber`` (seeded phases)."""
    rng = np.random.default_rng([cfg.seed, 1])
    k = np.sqrt(sp.k2)
    ring = (k >= cfg.forcing_wavenumber[0]) & (k <= cfg.forcing_wavenumber[1])
    phases = np.exp(2j * np.pi * rng.random(sp.k2.shape))
    f_hat = np.where(ring, phases, 0.0)
    f = sp.to_grid(f_hat)
    return sp.to_spec(cfg.forcing_amplitude * f / f.std())


def _tendency(z_hat, cfg, sp, f_hat):
    psi_hat = sp.inv_k2 * z_hat
    u = sp.to_grid(-sp.iky * psi_hat)
    v = sp.to_grid(sp.ikx * psi_hat)
    zx = sp.to_grid(sp.ikx * z_hat)
    zy = sp.to_grid(sp.iky * z_hat)
    advection = sp.to_spec(u * zx + v * zy) * sp.dealias
    return -advection - cfg.beta * sp.ikx * psi_hat + f_hat - cfg.drag * z_hat - sp.hyper * z_hat


def _rk4(z_hat, cfg, sp, f_hat):
    dt = cfg.dt
    k1 = _tendency(z_hat, cfg, sp, f_hat)
    k2 = _tendency(z_hat + 0.5 * dt * k1, cfg, sp, f_hat)
    k3 = _tendency(z_hat + 0.5 * dt * k2, cfg, sp, f_hat)
    k4 = _tendency(z_hat + dt * k3, cfg, sp, f_hat)
    return z_hat + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def _state(z_hat, sp) -> np.ndarray:
    psi_hat = sp.inv_k2 * z_hat
    u = sp.to_grid(-sp.iky * psi_hat)
    v = sp.to_grid(sp.ikx * psi_hat)
    return np.stack([u, v, sp.to_grid(z_hat)]).astype(np.float32)


def simulate(cfg: BarotropicConfig, progress=None) -> np.ndarray:
    """The trajectory, float32 (n_steps, 3, nlat, nlon); ``progress(i, n)`` is called per saved step."""
    sp = _Spectral(cfg)
    f_hat = _forcing(cfg, sp)
    rng = np.random.default_rng([cfg.seed, 0])
    z_hat = sp.to_spec(0.1 * rng.standard_normal(sp.shape)) * sp.dealias
    for _ in range(cfg.spinup_steps * cfg.substeps):
        z_hat = _rk4(z_hat, cfg, sp, f_hat)
    out = np.empty((cfg.n_steps, len(CHANNELS), cfg.nlat, cfg.nlon), dtype=np.float32)
    for i in range(cfg.n_steps):
        out[i] = _state(z_hat, sp)
        if not np.isfinite(out[i]).all():
            raise FloatingPointError(f"the barotropic integration blew up at saved step {i}")
        for _ in range(cfg.substeps):
            z_hat = _rk4(z_hat, cfg, sp, f_hat)
        if progress:
            progress(i + 1, cfg.n_steps)
    return out


def coarsen(fields: np.ndarray, factor: int) -> np.ndarray:
    """Block-average the last two axes by ``factor`` (a conservative regrid of the same trajectory)."""
    *lead, ny, nx = fields.shape
    if ny % factor or nx % factor:
        raise ValueError(f"grid {ny} x {nx} is not divisible by {factor}")
    return fields.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))


def generate(cfg: BarotropicConfig, cache_dir: Path, progress=None) -> tuple[Path, dict]:
    """The trajectory file ``{cache_dir}/{digest}/fields.npy`` and its metadata, generated once.

    Both frameworks read these identical bytes. Metadata records the generation time of this call
    (0 s when the cached file was reused, with ``cached: true``).
    """
    target = Path(cache_dir) / f"barotropic-{cfg.digest()}"
    fields_path, meta_path = target / "fields.npy", target / "meta.json"
    if fields_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError):  # a torn metadata file: generated again below
            meta = None
        if isinstance(meta, dict) and meta.get("sha256"):
            problem = npy_problem(fields_path, (cfg.n_steps, len(CHANNELS), cfg.nlat, cfg.nlon), np.float32)
            if problem is None:
                return fields_path, {**meta, "cached": True}
            say_regenerating(problem)
    target.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fields = simulate(cfg, progress)
    seconds = time.perf_counter() - t0
    tmp = fields_path.with_name("fields.tmp.npy")
    np.save(tmp, fields)
    tmp.replace(fields_path)
    sha = hashlib.sha256(fields_path.read_bytes()).hexdigest()
    meta = {
        "generator": GENERATOR_VERSION,
        "config": asdict(cfg),
        "channels": list(CHANNELS),
        "sha256": sha,
        "generation_s": seconds,
        "shape": list(fields.shape),
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return fields_path, {**meta, "cached": False}
