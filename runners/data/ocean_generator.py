"""Built-in AI-GOMS data: a wind-driven reduced-gravity ocean under synthetic weather, cached by content hash."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runners.data.builtin import BuiltinData, cache_dir
from runners.data.files import file_sha256, npy_problem, say_regenerating
from runners.data.ocean import OCEAN_VARIABLES, cell_centres, channels, ocean_mask, orography_m
from runners.data.source import ArraySource, InvalidDataError

GENERATOR_VERSION = "ocean-reduced-gravity/1"
EARTH_RADIUS, OMEGA, GRAVITY = 6.371e6, 7.292e-5, 9.81
RHO_SEA, RHO_AIR, P_REF, DAY, T_FREEZE = 1025.0, 1.2, 101325.0, 86400.0, -1.8
WEIGHTS_CONVENTION = "uniform"  # equal-area cells of a plane, not a sphere


@dataclass(frozen=True)
class OceanConfig:
    """Parameters of one daily trajectory; lengths in m, times in days unless named otherwise.

    The grid ``img_size`` (1:2) is an equal-area beta-plane channel 2 pi R long, periodic in longitude,
    walled at its northern and southern edges, with square cells pi R / lat wide and Coriolis
    f = 2 Omega sin(lat) by row (the geometry of :mod:`runners.data.barotropic`, not a sphere). Surface
    land of :func:`runners.data.ocean.ocean_mask` is a solid wall: no current, no flux.

    A 1.5-layer (reduced-gravity) shallow-water ocean on an Arakawa C grid is stepped forward-backward
    (thickness, then u and v in alternating order, each taking Coriolis from the other's newest value)
    under wind stress, implicit linear drag, Laplacian viscosity, thickness diffusion and a slow relaxation
    of the interface; momentum advection is left out (small Rossby number at these grid spacings). The
    surface current adds the steady Ekman drift of a slab under the stress. SST and SSS are upwind-advected
    by it and diffused; SST relaxes, faster in strong wind, toward the air temperature plus a heave term
    and is cooled by Ekman upwelling; SSS feels evaporation (bulk formula) minus rain, upwelling and a weak
    restoring. SSH is (g'/g) h' plus the inverse barometer. Below the surface, T(z) = T_deep + (SST -
    T_deep) exp(-z_eff / t_scale) with the heaved depth z_eff = z - h' (1 - exp(-z / heave_scale)), S(z)
    likewise, and u(z) = (u_s - a u_l) exp(-z / u_scale) + a u_l (surface current u_s, layer current u_l).
    """

    img_size: tuple[int, int]
    depths_m: tuple[int, ...]
    n_days: int = 730  # saved daily states
    spinup_days: int = 120
    seed: int = 20261201
    substeps_per_day: int = 16  # dynamics steps: f dt < 0.8 at the poles
    tracer_steps_per_day: int = 4
    layer_depth: float = 400.0  # rest thickness of the active layer
    reduced_gravity: float = 0.02  # g' (m s-2): gravity waves at 2.8 m/s
    layer_drag_days: float = 30.0
    interface_relax_days: float = 180.0
    viscosity_days: float = 2.0  # damping time of the grid scale by the Laplacian viscosity
    diffusivity: float = 2000.0  # m2 s-1, of temperature, salinity and layer thickness
    ekman_depth: float = 25.0  # slab of the surface Ekman drift
    ekman_drag_days: float = 1.0
    sst_relax_days: float = 8.0  # at 8 m/s of wind, faster in stronger wind
    heave_sst: float = 0.02  # K of SST target per m of thermocline deepening
    mixed_layer: float = 30.0  # depth that E - P and upwelling act on
    salinity_restore_days: float = 365.0
    t_deep: float = 3.0  # deg C, below the thermocline
    t_scale: float = 250.0
    s_deep: float = 34.7  # psu
    s_scale: float = 300.0
    u_scale: float = 50.0
    deep_current_fraction: float = 0.3
    heave_scale: float = 100.0
    weather_days: float = 3.0  # decorrelation time of synoptic weather
    weather_pa: float = 1000.0  # midlatitude amplitude of synoptic pressure anomalies

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        object.__setattr__(self, "depths_m", tuple(int(v) for v in self.depths_m))
        h, w = self.img_size
        if w != 2 * h or not 8 <= h <= 256:
            raise ValueError(f"grid must be 1:2 (lat x 2 lat) with 8 to 256 latitudes, got {h} x {w}")
        if not self.depths_m or list(self.depths_m) != sorted(set(self.depths_m)) or self.depths_m[0] < 0:
            raise ValueError(f"depths_m must be distinct non-negative depths in increasing order, got {self.depths_m}")
        if not ocean_mask(self.img_size, self.depths_m).any(axis=(1, 2)).all():
            raise ValueError(f"some of the depths {self.depths_m} lie below the deepest sea floor")
        if self.n_days < 2 or self.spinup_days < 0:
            raise ValueError("n_days >= 2 and spinup_days >= 0 are required")
        n_sub, n_tr = self.substeps_per_day, self.tracer_steps_per_day
        if n_sub < 10 or n_tr < 1 or n_sub % n_tr:  # f dt < 1.3 keeps the Coriolis step stable
            raise ValueError("substeps_per_day must be at least 10 and a multiple of tracer_steps_per_day")

    def digest(self) -> str:
        """A 16-hex-digit hash of the generator version and every parameter."""
        blob = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Model:
    """Grid, masks and operators of one configuration, and its stochastic weather."""

    def __init__(self, cfg: OceanConfig):
        self.cfg = c = cfg
        ny, nx = cfg.img_size
        lats, _ = cell_centres(cfg.img_size)
        self.phi = np.deg2rad(lats)[:, None]
        self.dx, self.dt = np.pi * EARTH_RADIUS / ny, DAY / c.substeps_per_day
        self.ocean = ocean_mask(cfg.img_size, (0,))[0]
        self.sea = self.ocean.astype(np.float64)
        self.umask = (self.ocean & np.roll(self.ocean, 1, 1)).astype(np.float64)  # west faces
        self.vmask = np.zeros((ny + 1, nx))  # north faces; rows 0 and ny are the channel's walls
        self.vmask[1:-1] = self.ocean[:-1] & self.ocean[1:]
        self.walls = (self.umask, self.vmask[1:-1])
        self.f = 2 * OMEGA * np.sin(self.phi)
        self.fv = 2 * OMEGA * np.sin(np.deg2rad(90.0 - np.arange(ny + 1) * 180.0 / ny))[:, None]
        self.orog = orography_m(cfg.img_size)
        self.visc = self.dx**2 / (c.viscosity_days * DAY)
        re = 1.0 / (c.ekman_drag_days * DAY)
        den = RHO_SEA * c.ekman_depth * (re**2 + self.f**2)
        self.ek_a, self.ek_b = re / den * self.sea, self.f / den * self.sea
        lat = np.abs(self.phi)
        self.s_ref = 34.2 + 1.6 * np.exp(-(((lat - 0.38) / 0.21) ** 2)) - 0.6 * np.exp(-(((self.phi - 0.1) / 0.1) ** 2))
        # Weather: AR(1) zonal Fourier coefficients (ny, nk) of unit variance, smooth over 8 degrees of
        # latitude, carried east in midlatitudes and west in the tropics at a steering speed.
        self.rng = np.random.default_rng([c.seed, 0])
        k = np.arange(nx // 2 + 1)
        shape = np.where(k > 0, np.exp(-(((k - 6.0) / 3.0) ** 2)), 0.0)
        self.k_shape = shape * nx / np.sqrt(2.0 * np.sum(shape**2))
        gauss = np.exp(-2.0 * (np.pi * np.fft.fftfreq(2 * ny) * (8.0 * ny / 180.0)) ** 2)
        self.y_filter = (gauss / np.sqrt(np.mean(gauss**2)))[:, None]
        steer = 12.0 * np.exp(-(((np.abs(lats) - 45.0) / 20.0) ** 2)) - 5.0 * np.exp(-((lats / 15.0) ** 2))
        a = np.exp(-1.0 / c.weather_days)
        self.ar, self.ar_noise = a * np.exp(-1j * k * steer[:, None] * DAY / EARTH_RADIUS), np.sqrt(1.0 - a * a)
        self.ikx = 1j * k / EARTH_RADIUS
        self.p_amp = 70.0 + (c.weather_pa - 70.0) * np.exp(-(((lat - 0.87) / 0.26) ** 2))
        self.weather, self.day = self._noise(), -cfg.spinup_days

    def _noise(self) -> np.ndarray:
        ny = self.phi.shape[0]
        z = self.rng.standard_normal((2, 2 * ny, self.k_shape.size))
        z = np.fft.ifft(np.fft.fft((z[0] + 1j * z[1]) / np.sqrt(2.0), axis=0) * self.y_filter, axis=0)[:ny]
        return z * self.k_shape

    def forcing(self, day: int) -> np.ndarray:
        """u10, v10 (m/s), t2m (K), msl (Pa) and tp (mm/day) of ``day`` (0 = 1 January), float64 (5, lat, lon).

        Climatological belts (trades, westerlies, polar easterlies, an ITCZ) follow the season; msl holds
        their pressure in the frictional balance f k x u = -grad(p) / rho - eps u, and weather systems
        whose winds obey the same balance. Poleward wind warms the air, and rain falls in the lows.
        """
        nx, eps, f = self.cfg.img_size[1], 2e-5, self.f
        if day < self.day:
            raise ValueError(f"the weather has moved on to day {self.day}; day {day} is gone")
        for _ in range(day - self.day):
            self.weather = self.ar * self.weather + self.ar_noise * self._noise()
        self.day = day
        shift = np.deg2rad(4.0 * np.sin(2 * np.pi * (day - 105) / 365.0))
        phi, itcz = self.phi - shift, np.deg2rad(5.0) + shift
        u_c = -7.0 * np.cos(3.6 * phi)
        v_c = -3.0 * np.sin(np.pi * np.clip((self.phi - itcz) / np.deg2rad(30.0), -1.0, 1.0))
        p_c = np.cumsum(RHO_AIR * (f * u_c + eps * v_c) * self.dx, axis=0)  # dp/dy integrated southwards
        raw = np.fft.irfft(self.weather, n=nx, axis=1)
        p_w = self.p_amp * raw
        px = self.p_amp * np.fft.irfft(self.ikx * self.weather, n=nx, axis=1)
        py = -np.gradient(p_w, self.dx, axis=0)
        den = RHO_AIR * (eps**2 + f**2)
        u10, v10 = u_c - (eps * px + f * py) / den, v_c - (eps * py - f * px) / den
        land = 1.0 - self.sea
        sin, season = np.sin(self.phi) * (1.0 + 1.5 * land), np.cos(2 * np.pi * (day - 20) / 365.0)
        t2m = 300.15 - 45.0 * np.sin(phi) ** 2 - 8.0 * sin * season + 0.7 * sin * (v10 - v_c)
        t2m = t2m - 0.0065 * np.maximum(self.orog, 0.0)
        wet = 1.5 + 9.0 * np.exp(-(((self.phi - itcz) / 0.14) ** 2)) + 3.0 * np.exp(-(((np.abs(phi) - 0.8) / 0.2) ** 2))
        msl = P_REF + p_c - p_c.mean() + p_w
        return np.stack([u10, v10, t2m, msl, wet * np.exp(-0.7 * raw - 0.245)])


def _stress(frc: np.ndarray) -> np.ndarray:
    return RHO_AIR * 1.3e-3 * np.hypot(frc[0], frc[1]) * frc[:2]


def _faces(uc: np.ndarray, vc: np.ndarray, m: _Model) -> tuple[np.ndarray, np.ndarray]:
    """Centre vectors averaged to the open west and north faces (closed faces carry 0)."""
    vf = np.zeros(m.vmask.shape)
    vf[1:-1] = 0.5 * (vc[:-1] + vc[1:]) * m.vmask[1:-1]
    return 0.5 * (uc + np.roll(uc, 1, 1)) * m.umask, vf


def _lap(a: np.ndarray, dx: float, mx=1.0, my=1.0) -> np.ndarray:
    """Five-point Laplacian of fields (..., lat, lon), periodic in x, without flux through the first and
    last rows nor through faces where the masks ``mx`` (west faces) and ``my`` (inner north faces) are 0."""
    gx = mx * (a - np.roll(a, 1, -1))
    gy = np.zeros(a.shape[:-2] + (a.shape[-2] + 1, a.shape[-1]))
    gy[..., 1:-1, :] = my * (a[..., :-1, :] - a[..., 1:, :])
    return (np.roll(gx, -1, -1) - gx + gy[..., :-1, :] - gy[..., 1:, :]) / dx**2


def _dynamics(st: dict, m: _Model, tau_u: np.ndarray, tau_v: np.ndarray, flip: bool) -> None:
    """One forward-backward step of the layer: thickness first, then u and v (v first when ``flip``)."""
    c, dt, dx, hp = m.cfg, m.dt, m.dx, st["hp"]
    h = c.layer_depth + hp
    hu, hv = 0.5 * (h + np.roll(h, 1, 1)), np.full(m.vmask.shape, c.layer_depth)  # thickness on faces
    hv[1:-1] = 0.5 * (h[:-1] + h[1:])
    fu, fv = st["u"] * hu, st["v"] * hv
    div = (np.roll(fu, -1, 1) - fu + fv[:-1] - fv[1:]) / dx
    st["hp"] = hp = hp + dt * (-div + c.diffusivity * _lap(hp, dx, *m.walls) - hp / (c.interface_relax_days * DAY))
    drag, thin = 1.0 / (1.0 + dt / (c.layer_drag_days * DAY)), 0.25 * c.layer_depth  # stress spreads over >= thin
    for comp in "vu" if flip else "uv":
        if comp == "u":
            vs = st["v"][:-1] + st["v"][1:]
            acc = m.f * 0.25 * (vs + np.roll(vs, 1, 1)) - c.reduced_gravity * (hp - np.roll(hp, 1, 1)) / dx
            acc += tau_u / (RHO_SEA * np.maximum(hu, thin)) + m.visc * _lap(st["u"], dx)
            st["u"] = (st["u"] + dt * acc) * drag * m.umask
        else:
            us = st["u"] + np.roll(st["u"], -1, 1)
            acc = tau_v / (RHO_SEA * np.maximum(hv, thin)) + m.visc * _lap(st["v"], dx)
            acc[1:-1] -= m.fv[1:-1] * 0.25 * (us[:-1] + us[1:]) + c.reduced_gravity * (hp[:-1] - hp[1:]) / dx
            st["v"] = (st["v"] + dt * acc) * drag * m.vmask


def _currents(st: dict, m: _Model, tau: np.ndarray) -> tuple[np.ndarray, ...]:
    """Layer current (u, v) and surface current (layer plus steady slab Ekman drift) at cell centres."""
    ul, vl = 0.5 * (st["u"] + np.roll(st["u"], -1, 1)), 0.5 * (st["v"][:-1] + st["v"][1:])
    return ul, vl, ul + m.ek_a * tau[0] + m.ek_b * tau[1], vl + m.ek_a * tau[1] - m.ek_b * tau[0]


def _profile(surface, deep: float, scale: float, hp: np.ndarray, z: float, heave_scale: float) -> np.ndarray:
    """Exponential profile from ``surface`` to ``deep``, its thermocline heaved down by up to ``hp`` metres."""
    z_eff = np.maximum(z - hp * (1.0 - np.exp(-z / heave_scale)), 0.0)
    return deep + (surface - deep) * np.exp(-z_eff / scale)


def _tracers(st: dict, m: _Model, frc: np.ndarray, dt: float) -> None:
    """Advance SST and SSS (stacked) by ``dt`` seconds under the forcing ``frc``."""
    c, tr, hp = m.cfg, st["tr"], st["hp"]
    ul, vl, us, vs = _currents(st, m, _stress(frc))
    uf, vf = _faces(us, vs, m)
    dtx, dty = tr - np.roll(tr, 1, -1), np.zeros((2,) + vf.shape)
    dty[:, 1:-1] = tr[:, :-1] - tr[:, 1:]
    adv = np.maximum(uf, 0) * dtx + np.minimum(np.roll(uf, -1, 1), 0) * np.roll(dtx, -1, -1)
    adv += np.maximum(vf[1:], 0) * dty[:, 1:] + np.minimum(vf[:-1], 0) * dty[:, :-1]
    ue, ve = _faces(us - ul, vs - vl, m)
    upwell = np.maximum(c.ekman_depth * (np.roll(ue, -1, 1) - ue + ve[:-1] - ve[1:]) / m.dx, 0.0) / c.mixed_layer
    (sst, sss), z_sub = tr, c.mixed_layer + 25.0
    target = np.maximum(frc[2] - 272.15 + c.heave_sst * hp, T_FREEZE)
    wind = np.sqrt(frc[0] ** 2 + frc[1] ** 2 + 1.0)
    t_c = np.stack([sst, frc[2] - 273.15])
    q_sat = 0.622 * 611.2 / P_REF * np.exp(17.67 * t_c / (t_c + 243.5))
    evap = np.maximum(RHO_AIR * 1.2e-3 * wind * (q_sat[0] - 0.8 * q_sat[1]), 0.0) * DAY  # bulk formula, mm/day
    fresh = evap - frc[4]
    fresh -= fresh[m.ocean].mean()  # global freshwater balance: rivers return the net rain over land
    d_sst = (target - sst) * wind / (8.0 * c.sst_relax_days * DAY)
    d_sst += upwell * (_profile(sst, c.t_deep, c.t_scale, hp, z_sub, c.heave_scale) - sst)
    d_sss = sss * fresh / (1000.0 * DAY * c.mixed_layer) - (sss - m.s_ref) / (c.salinity_restore_days * DAY)
    d_sss += upwell * (_profile(sss, c.s_deep, c.s_scale, hp, z_sub, c.heave_scale) - sss)
    tr = tr + dt * (-adv / m.dx + c.diffusivity * _lap(tr, m.dx, *m.walls) + np.stack([d_sst, d_sss]) * m.sea)
    tr[0] = np.maximum(tr[0], T_FREEZE)
    st["tr"] = tr


def _record(st: dict, m: _Model, frc: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The channels of one day, float32 (C, lat, lon); land at each level holds the channel's ocean mean."""
    c, hp, (sst, sss), a = m.cfg, st["hp"], st["tr"], m.cfg.deep_current_fraction
    ul, vl, us, vs = _currents(st, m, _stress(frc))
    prof = [(_profile(sst, c.t_deep, c.t_scale, hp, z, c.heave_scale),
             _profile(sss, c.s_deep, c.s_scale, hp, z, c.heave_scale),
             (us - a * ul) * np.exp(-z / c.u_scale) + a * ul,
             (vs - a * vl) * np.exp(-z / c.u_scale) + a * vl) for z in c.depths_m]  # fmt: skip
    ib = -(frc[3] - frc[3][m.ocean].mean()) / (RHO_SEA * GRAVITY)
    ocean = [p[i] for i in range(len(OCEAN_VARIABLES)) for p in prof] + [c.reduced_gravity / GRAVITY * hp + ib]
    masks = list(levels) * len(OCEAN_VARIABLES) + [m.ocean]  # sea-surface height: the surface mask
    filled = [np.where(mk, x, x[mk].mean()) for x, mk in zip(ocean, masks, strict=True)]
    return np.stack(filled + list(frc) + [m.orog]).astype(np.float32)


def simulate(cfg: OceanConfig, out: np.ndarray, progress=None) -> None:
    """Fill ``out``, float32 (n_days, C, lat, lon) such as a memory map, with the trajectory in the order of
    :func:`channels`, calling ``progress(i, n_days)`` after each saved day."""
    m = _Model(cfg)
    ny, nx = cfg.img_size
    levels = ocean_mask(cfg.img_size, cfg.depths_m)
    frc = m.forcing(-cfg.spinup_days)
    st = {"hp": np.zeros((ny, nx)), "u": np.zeros((ny, nx)), "v": np.zeros((ny + 1, nx))}
    st["tr"] = np.stack([np.maximum(frc[2] - 272.15, T_FREEZE), np.broadcast_to(m.s_ref, (ny, nx))])
    n_sub, n_tr = cfg.substeps_per_day, cfg.substeps_per_day // cfg.tracer_steps_per_day
    for day in range(-cfg.spinup_days, cfg.n_days):
        if day >= 0:
            out[day] = _record(st, m, frc, levels)
            if not np.isfinite(out[day]).all():
                raise FloatingPointError(f"the ocean integration blew up at saved day {day}")
            if progress:
                progress(day + 1, cfg.n_days)
        if day == cfg.n_days - 1:
            break
        nxt = m.forcing(day + 1)
        (u0, v0), (u1, v1) = (_faces(*_stress(x), m) for x in (frc, nxt))
        for s in range(n_sub):
            w = (s + 0.5) / n_sub
            _dynamics(st, m, u0 + w * (u1 - u0), v0 + w * (v1 - v0), flip=bool(s % 2))
            if (s + 1) % n_tr == 0:
                _tracers(st, m, frc + (s + 1 - 0.5 * n_tr) / n_sub * (nxt - frc), n_tr * m.dt)
        frc = nxt


def generate(cfg: OceanConfig, cache: Path, progress=None) -> tuple[Path, dict]:
    """The trajectory file ``{cache}/ocean-{digest}/fields.npy`` and its metadata, generated once.

    Returns
    -------
    path, meta : Path, dict
        Float32 (n_days, C, lat, lon) in physical units, and metadata with its ``sha256``, ``generator``,
        ``generation_s`` and ``cached``. A file already there is reused when it opens with the expected
        shape (its hash is not recomputed, as in :func:`runners.data.barotropic.generate`); writes go
        to temporary files that then replace the targets.
    """
    target = Path(cache) / f"ocean-{cfg.digest()}"
    fields_path, meta_path = target / "fields.npy", target / "meta.json"
    names = channels(cfg.depths_m)
    shape = (cfg.n_days, len(names), *cfg.img_size)
    try:
        meta = json.loads(meta_path.read_text())
        problem = npy_problem(fields_path, shape, np.float32)
        if problem is None and meta.get("sha256"):
            return fields_path, {**meta, "cached": True}
        if problem is not None and os.path.lexists(fields_path):
            say_regenerating(problem)
    except (OSError, ValueError, AttributeError):  # no entry yet, or a torn metadata file: generated below
        pass
    target.mkdir(parents=True, exist_ok=True)
    tmp, tmp_meta = target / f"fields.{os.getpid()}.tmp.npy", target / f"meta.{os.getpid()}.tmp.json"
    t0 = time.perf_counter()
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        simulate(cfg, out, progress)
        out.flush()
        del out
        seconds = time.perf_counter() - t0
        meta = {"generator": GENERATOR_VERSION, "config": asdict(cfg), "channels": list(names), "shape": list(shape)}
        meta.update(sha256=file_sha256(tmp), generation_s=seconds, grid=list(cfg.img_size), depths_m=list(cfg.depths_m))
        land = [float(1.0 - level.mean()) for level in ocean_mask(cfg.img_size, cfg.depths_m)]  # per level
        meta.update(land_fraction=land, weights_convention=WEIGHTS_CONVENTION)
        tmp.replace(fields_path)
        tmp_meta.write_text(json.dumps(meta, indent=1))
        tmp_meta.replace(meta_path)
    finally:
        tmp.unlink(missing_ok=True)
    return fields_path, {**meta, "cached": False}


def builtin_ocean_dataset(
    img_size: tuple[int, int], depths_m, cache: Path | None = None, progress=None, n_days: int = 730
) -> BuiltinData:
    """The built-in ocean data at ``img_size`` and ``depths_m``: daily steps, the first 80 % for training.

    Parameters
    ----------
    img_size, depths_m, n_days :
        As in :class:`OceanConfig`.
    cache : Path, optional
        Cache directory (default :func:`runners.data.builtin.cache_dir`).

    Returns
    -------
    BuiltinData
        A 24-hourly :class:`ArraySource` over the memory-mapped file at the cell centres of
        :func:`runners.data.ocean.cell_centres`. Cells are those of an equal-area plane, so the
        weights convention is ``"uniform"``, not cos(latitude).
    """
    try:
        cfg = OceanConfig(img_size=tuple(img_size), depths_m=tuple(depths_m), n_days=int(n_days))
    except ValueError as exc:
        raise InvalidDataError(f"no built-in ocean data for this request: {exc}") from exc
    path, meta = generate(cfg, cache or cache_dir(), progress)
    lats, lons = cell_centres(cfg.img_size)
    source = ArraySource(np.load(path, mmap_mode="r"), channels(cfg.depths_m), lats, lons, time_step_hours=24.0)
    split = int(round(0.8 * cfg.n_days))
    return BuiltinData(path, source, {**meta, "file": str(path)}, (0, split), (split, cfg.n_days), WEIGHTS_CONVENTION)
