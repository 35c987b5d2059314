"""Forecast skill (latitude-weighted RMSE and ACC) in NumPy, for host arrays from either framework."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Axis convention, used throughout this module
# --------------------------------------------
# Every field is an array of shape ``(..., channel, lat, lon)``: the last three axes are channel, latitude and
# longitude, latitude rows in the order of the weights. Any leading axes are allowed. Where a function averages
# over initial conditions ("samples") it is axis 0, and it says so. Rollouts scored by :func:`score_lead_times`
# have shape ``(n_init, n_lead, channel, lat, lon)``. All arithmetic is done in float64.

CONVENTIONS = ("cosine", "cell-area", "uniform")
"""Latitude-weighting conventions: FourCastNet / WeatherBench 1 cosine, WeatherBench 2 cell area."""

ORDERS = ("sqrt_of_mean_mse", "mean_of_rmse")
"""Orders of averaging RMSE over initial conditions (axis 0)."""

DEFAULT_ORDER = "sqrt_of_mean_mse"
"""WeatherBench's order: the root of the pooled MSE (see :class:`RMSE` for why it is the default)."""


# ----------------------------------------------------------------------------------------------------------------
# Latitude weights


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown latitude-weighting convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"unknown RMSE order {order!r}; known: {', '.join(ORDERS)}")


def _latitudes(n_lat: int, lats_deg: np.ndarray | None) -> np.ndarray:
    """Row latitudes in degrees: ``lats_deg`` checked, or FourCastNet's ``90 - j * 180 / (n_lat - 1)``."""
    if isinstance(n_lat, bool) or not isinstance(n_lat, (int, np.integer)) or n_lat < 2:
        raise ValueError(f"n_lat must be an integer of at least 2, got {n_lat!r}")
    if lats_deg is None:
        return 90.0 - np.arange(n_lat, dtype=np.float64) * 180.0 / (n_lat - 1)
    lats = np.asarray(lats_deg, dtype=np.float64)
    if lats.shape != (n_lat,):
        raise ValueError(f"lats_deg must have shape ({n_lat},), got {lats.shape}")
    if not np.all(np.isfinite(lats)) or np.any(np.abs(lats) > 90.0):
        raise ValueError("lats_deg must be finite and within [-90, 90] degrees")
    steps = np.diff(lats)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("lats_deg must be strictly increasing or strictly decreasing")
    return lats


def _cosine(lats: np.ndarray) -> np.ndarray:
    """``cos(lat)``, exactly zero at the poles rather than ``6e-17``."""
    return np.where(np.abs(lats) == 90.0, 0.0, np.cos(np.deg2rad(lats)))


def _cell_area(lats: np.ndarray) -> np.ndarray:
    """``|sin(upper bound) - sin(lower bound)|`` with bounds halfway between rows, the outer ones clipped at 90."""
    inner = (lats[:-1] + lats[1:]) / 2.0
    first = lats[0] - (lats[1] - lats[0]) / 2.0
    last = lats[-1] + (lats[-1] - lats[-2]) / 2.0
    bounds = np.clip(np.concatenate([[first], inner, [last]]), -90.0, 90.0)
    return np.abs(np.diff(np.sin(np.deg2rad(bounds))))


def latitude_weights(n_lat: int, convention: str = "cosine", lats_deg: np.ndarray | None = None) -> np.ndarray:
    """Per-row latitude weights of shape ``(n_lat,)``, normalised to mean 1.

    Parameters
    ----------
    n_lat : int
        Number of latitude rows, at least 2.
    convention : {"cosine", "cell-area", "uniform"}
        ``"cosine"`` (FourCastNet, WeatherBench 1): ``w_j = cos(lat_j)``, exactly 0 at a pole.
        ``"uniform"``: all rows weigh 1, for planar grids of equal-area cells (the built-in beta-plane data).
        ``"cell-area"`` (WeatherBench 2): ``sin(upper) - sin(lower)`` of the cell around each row, with bounds
        halfway between rows and the outermost bounds extended by half a spacing and clipped at +-90. On a
        global equiangular grid the outermost bounds are the poles, with or without pole rows. Interior rows of
        an equiangular grid get exactly the cosine weights; only pole rows differ (a polar cap instead of 0).
    lats_deg : array of shape (n_lat,), optional
        Row latitudes in degrees, strictly monotonic. By default FourCastNet's
        ``lat_j = 90 - j * 180 / (n_lat - 1)``, north to south including both poles. (FourCastNet applies that
        formula to its 720-row crop of the 721-row ERA5 grid; pass ``lats_deg`` for the true rows.)

    Returns
    -------
    np.ndarray
        Float64 weights of shape ``(n_lat,)`` with mean 1, in the row order of the latitudes.

    Examples
    --------
    >>> latitude_weights(3)
    array([0., 3., 0.])
    >>> latitude_weights(3, "cell-area").round(5)
    array([0.43934, 2.12132, 0.43934])
    """
    _check_convention(convention)
    lats = _latitudes(n_lat, lats_deg)
    if convention == "uniform":
        return np.ones(n_lat)
    raw = _cosine(lats) if convention == "cosine" else _cell_area(lats)
    total = raw.sum()
    if total <= 0.0:
        raise ValueError(f"{convention} weights of these {n_lat} latitudes sum to zero (only poles?)")
    return raw * (n_lat / total)


# ----------------------------------------------------------------------------------------------------------------
# Argument checks shared by the metrics


def _fields(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth shapes differ: {p.shape} vs {t.shape}")
    if p.ndim < 3:
        raise ValueError(f"fields must have shape (..., channel, lat, lon), got {p.shape}")
    return p, t


def _row_weights(weights, shape: tuple[int, ...]) -> np.ndarray:
    """Weights as a ``(lat, 1)`` column that broadcasts over longitude, checked against ``shape``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (shape[-2],):
        raise ValueError(f"weights must have shape ({shape[-2]},) to match the lat axis of {shape}, got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w[:, None]


def _cell_weights(weights, shape: tuple[int, ...], mask) -> np.ndarray:
    """Row weights times an optional 0/1 ``mask`` of shape ``(lat, lon)`` or ``(channel, lat, lon)`` (land = 0)."""
    w = _row_weights(weights, shape)
    if mask is None:
        return w
    m = np.asarray(mask, dtype=np.float64)
    if m.shape not in (shape[-2:], shape[-3:]):
        raise ValueError(f"mask must have shape {shape[-2:]} or {shape[-3:]} to match the fields, got {m.shape}")
    if not np.all((m == 0) | (m == 1)) or np.any(m.sum(axis=(-2, -1)) == 0):
        raise ValueError("mask must hold only 0 and 1 and keep at least one cell of every channel")
    return w * m


def _channel_std(std, shape: tuple[int, ...]) -> np.ndarray | None:
    if std is None:
        return None
    s = np.asarray(std, dtype=np.float64)
    if s.shape != (shape[-3],):
        raise ValueError(f"std must have shape ({shape[-3]},) to match the channel axis of {shape}, got {s.shape}")
    return s


def _sample_axis(shape: tuple[int, ...]) -> None:
    if len(shape) < 4:
        raise ValueError(f"averaging over samples needs shape (sample, ..., channel, lat, lon), got {shape}")


# ----------------------------------------------------------------------------------------------------------------
# Functional metrics


def weighted_mse(pred, truth, weights, std=None, mask=None) -> np.ndarray:
    """Latitude-weighted mean squared error over (lat, lon), shape ``(..., channel)``.

    The weighted mean ``sum(w * (pred - truth)^2) / sum(w)``, both sums over lat and lon with ``w`` repeated along
    lon: the plain mean of ``w * err^2`` for weights of mean 1 as :func:`latitude_weights` returns, and the same
    value for any positive multiple of them. Times ``std^2`` per channel when ``std`` is given. With a ``mask``
    (1 at sea, 0 on land, per channel or for all), the sums run over the masked-in cells only.

    Examples
    --------
    >>> weighted_mse(np.full((1, 3, 2), 2.0), np.zeros((1, 3, 2)), latitude_weights(3), std=[10.0])
    array([400.])
    """
    p, t = _fields(pred, truth)
    w = np.broadcast_to(_cell_weights(weights, p.shape, mask), p.shape[-3:])
    s = _channel_std(std, p.shape)
    mse = np.sum(w * (p - t) ** 2, axis=(-2, -1)) / w.sum(axis=(-2, -1))
    return mse if s is None else mse * s**2


def rmse(pred, truth, weights, std=None, mask=None) -> np.ndarray:
    """Latitude-weighted RMSE of each field, shape ``(..., channel)``; no averaging over leading axes.

    ``sqrt(mean over lat, lon of w * (pred - truth)^2)``. Fields normalised per channel are reported in physical
    units by passing that normalisation's ``std`` of shape ``(channel,)``: the error is multiplied by it.

    Examples
    --------
    >>> rmse(np.full((2, 3, 4), 1.5), np.ones((2, 3, 4)), latitude_weights(3), std=[2.0, 4.0])
    array([1., 2.])
    """
    return np.sqrt(weighted_mse(pred, truth, weights, std, mask))


def rmse_mean_of_rmse(pred, truth, weights, std=None, mask=None) -> np.ndarray:
    """FourCastNet's order: RMSE of each sample (axis 0), then the mean over samples; shape ``(..., channel)``.

    Examples
    --------
    >>> truth = np.zeros((2, 1, 3, 2))
    >>> pred = np.stack([np.full((1, 3, 2), 1.0), np.full((1, 3, 2), 3.0)])
    >>> rmse_mean_of_rmse(pred, truth, latitude_weights(3))
    array([2.])
    """
    _sample_axis(np.shape(pred))
    return rmse(pred, truth, weights, std, mask).mean(axis=0)


def rmse_sqrt_of_mean_mse(pred, truth, weights, std=None, mask=None) -> np.ndarray:
    """WeatherBench's order: MSE of each sample (axis 0), mean over samples, then the root; ``(..., channel)``.

    Examples
    --------
    >>> truth = np.zeros((2, 1, 3, 2))
    >>> pred = np.stack([np.full((1, 3, 2), 1.0), np.full((1, 3, 2), 3.0)])
    >>> rmse_sqrt_of_mean_mse(pred, truth, latitude_weights(3)) ** 2
    array([5.])
    """
    _sample_axis(np.shape(pred))
    return np.sqrt(weighted_mse(pred, truth, weights, std, mask).mean(axis=0))


def acc(pred, truth, clim, weights, mask=None) -> np.ndarray:
    """Latitude-weighted anomaly correlation of each field, shape ``(..., channel)``; NaN where undefined.

    With anomalies ``p' = pred - clim`` and ``t' = truth - clim``, sums over lat and lon:
    ``ACC = sum(w p' t') / sqrt(sum(w p'^2) * sum(w t'^2))``, with no further mean removal (FourCastNet and
    WeatherBench 2 agree). Where either anomaly has zero weighted energy (for instance a climatology forecast,
    or anomalies only at zero-weight pole rows) the correlation is undefined and the entry is NaN, never 0 or 1.
    ``clim`` must broadcast to ``pred``'s shape, for instance ``(channel, lat, lon)``, and be in the same units.
    A ``mask`` (as in :func:`weighted_mse`) restricts the sums to the masked-in cells.

    Examples
    --------
    >>> clim = np.zeros((1, 3, 2))
    >>> truth = np.array([[[1.0, -1.0], [2.0, -2.0], [1.0, 1.0]]])
    >>> acc(truth, truth, clim, latitude_weights(3)), acc(-truth, truth, clim, latitude_weights(3))
    (array([1.]), array([-1.]))
    """
    p, t = _fields(pred, truth)
    c = np.asarray(clim, dtype=np.float64)
    try:
        broadcast = np.broadcast_shapes(c.shape, p.shape)
    except ValueError:
        broadcast = None
    if broadcast != p.shape:
        raise ValueError(f"clim of shape {c.shape} does not broadcast to the fields' shape {p.shape}")
    w = _cell_weights(weights, p.shape, mask)
    pa, ta = p - c, t - c
    num = np.sum(w * pa * ta, axis=(-2, -1))
    den = np.sum(w * pa**2, axis=(-2, -1)) * np.sum(w * ta**2, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.sqrt(den), np.nan)


# ----------------------------------------------------------------------------------------------------------------
# Metric objects and lead-time scoring


@dataclass(frozen=True)
class RMSE:
    """Latitude-weighted RMSE averaged over samples (axis 0), in a named weighting convention and order.

    The default order is ``"sqrt_of_mean_mse"`` (WeatherBench 1 and 2: mean the MSE over initial conditions, then
    take the root) because the scale figures in the reference (WeatherBench's IFS, persistence and climatology
    scores) are computed that way, because pooled MSE does not depend on how samples are grouped into batches,
    and because it is never below the mean of per-sample RMSEs (Jensen), so it does not flatter a model.
    ``"mean_of_rmse"`` is FourCastNet's order, for comparing with its published curves.

    Examples
    --------
    >>> metric = RMSE(convention="cosine", order="mean_of_rmse")
    >>> metric.compute(np.ones((2, 1, 3, 4)), np.zeros((2, 1, 3, 4)), std=[5.0])
    array([5.])
    """

    convention: str = "cosine"
    order: str = DEFAULT_ORDER

    def __post_init__(self) -> None:
        _check_convention(self.convention)
        _check_order(self.order)

    def compute(self, pred, truth, lats_deg=None, std=None, mask=None) -> np.ndarray:
        """RMSE of fields ``(sample, ..., channel, lat, lon)``, averaged over axis 0: shape ``(..., channel)``."""
        _sample_axis(np.shape(pred))
        weights = latitude_weights(np.shape(pred)[-2], self.convention, lats_deg)
        if self.order == "mean_of_rmse":
            return rmse_mean_of_rmse(pred, truth, weights, std, mask)
        return rmse_sqrt_of_mean_mse(pred, truth, weights, std, mask)


@dataclass(frozen=True)
class ACC:
    """Latitude-weighted anomaly correlation of each sample (axis 0), then the mean over samples.

    Both FourCastNet and WeatherBench 2 average per-sample ACC over initial conditions. A NaN sample (undefined
    correlation, see :func:`acc`) makes the mean NaN: it is not silently dropped.

    Examples
    --------
    >>> truth = np.array([[[[1.0, -1.0], [2.0, -2.0], [1.0, 1.0]]]])
    >>> ACC(convention="cell-area").compute(0.5 * truth, truth, clim=np.zeros((1, 3, 2)))
    array([1.])
    """

    convention: str = "cosine"

    def __post_init__(self) -> None:
        _check_convention(self.convention)

    def compute(self, pred, truth, clim, lats_deg=None, mask=None) -> np.ndarray:
        """ACC of fields ``(sample, ..., channel, lat, lon)``, averaged over axis 0: shape ``(..., channel)``."""
        _sample_axis(np.shape(pred))
        weights = latitude_weights(np.shape(pred)[-2], self.convention, lats_deg)
        return acc(pred, truth, clim, weights, mask).mean(axis=0)


@dataclass(frozen=True, eq=False)
class Scores:
    """Per-lead, per-channel skill of a rollout, with the convention and order that produced it.

    ``rmse`` and ``acc`` have shape ``(n_lead, channel)`` and are stored as read-only float64 copies; ``channels``
    names the channel axis when known. ``rmse`` is in physical units when :func:`score_lead_times` had a ``std``.
    """

    rmse: np.ndarray
    acc: np.ndarray
    convention: str
    order: str
    channels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_convention(self.convention)
        _check_order(self.order)
        for name in ("rmse", "acc"):
            values = np.array(getattr(self, name), dtype=np.float64)
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        if self.rmse.ndim != 2 or self.rmse.shape != self.acc.shape:
            raise ValueError(
                f"rmse and acc must share a (lead, channel) shape, got {self.rmse.shape}, {self.acc.shape}"
            )
        if self.channels is not None and len(self.channels) != self.rmse.shape[1]:
            raise ValueError(f"{len(self.channels)} channel names given for {self.rmse.shape[1]} channels")


def score_lead_times(
    forecasts,
    truth,
    clim,
    *,
    convention: str = "cosine",
    order: str = DEFAULT_ORDER,
    lats_deg=None,
    std=None,
    channels: tuple[str, ...] | None = None,
    mask=None,
) -> Scores:
    """RMSE and ACC per lead time and channel of forecasts from several initial conditions.

    Parameters
    ----------
    forecasts, truth : arrays of shape (n_init, n_lead, channel, lat, lon)
        ``forecasts[i, k]`` is the forecast from initial condition ``i`` at lead ``k`` (an autoregressive rollout,
        :func:`persistence_forecast` or :func:`climatology_forecast`); ``truth[i, k]`` the state it verifies on.
    clim : array broadcastable to that shape
        Climatology for the anomalies, e.g. ``(channel, lat, lon)``, in the same units as the fields.
    convention, order : str
        Latitude weighting (:func:`latitude_weights`) and RMSE order over initial conditions (:class:`RMSE`).
    lats_deg : array of shape (lat,), optional
        Row latitudes; FourCastNet's formula by default.
    std : array of shape (channel,), optional
        Per-channel normalisation scale; RMSE is multiplied by it (ACC does not depend on it).
    channels : tuple of str, optional
        Channel names, recorded in the result.
    mask : array of shape (lat, lon) or (channel, lat, lon), optional
        1 where a field is defined (the ocean at its depth), 0 elsewhere; scores use those cells only.

    Returns
    -------
    Scores
        ``rmse`` and ``acc`` of shape ``(n_lead, channel)``, averaged over initial conditions.

    Examples
    --------
    >>> clim = np.zeros((1, 3, 2))
    >>> truth = np.tile([1.0, -1.0], (2, 2, 1, 3, 1))
    >>> scores = score_lead_times(0.5 * truth, truth, clim, channels=("z500",))
    >>> scores.rmse[:, 0], scores.acc[:, 0], scores.convention
    (array([0.5, 0.5]), array([1., 1.]), 'cosine')
    """
    if np.ndim(forecasts) != 5:
        raise ValueError(f"forecasts must have shape (n_init, n_lead, channel, lat, lon), got {np.shape(forecasts)}")
    rmse_values = RMSE(convention, order).compute(forecasts, truth, lats_deg, std, mask)
    acc_values = ACC(convention).compute(forecasts, truth, clim, lats_deg, mask)
    names = None if channels is None else tuple(channels)
    return Scores(rmse_values, acc_values, convention, order, names)


def persistence_forecast(initial_states, n_lead: int) -> np.ndarray:
    """The initial state repeated for every lead: ``(n_init, channel, lat, lon)`` to ``(n_init, n_lead, ...)``.

    Examples
    --------
    >>> persistence_forecast(np.arange(4.0).reshape(2, 1, 1, 2), 3).shape
    (2, 3, 1, 1, 2)
    """
    x = np.asarray(initial_states, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"initial_states must have shape (n_init, channel, lat, lon), got {x.shape}")
    _positive("n_lead", n_lead)
    return np.repeat(x[:, None], n_lead, axis=1)


def climatology_forecast(clim, n_init: int, n_lead: int) -> np.ndarray:
    """The climatology ``(channel, lat, lon)`` as a forecast ``(n_init, n_lead, channel, lat, lon)``.

    Its anomaly is zero everywhere, so its ACC is NaN by definition (see :func:`acc`); its RMSE is the reference.

    Examples
    --------
    >>> climatology_forecast(np.zeros((2, 3, 4)), n_init=5, n_lead=7).shape
    (5, 7, 2, 3, 4)
    """
    c = np.asarray(clim, dtype=np.float64)
    if c.ndim != 3:
        raise ValueError(f"clim must have shape (channel, lat, lon), got {c.shape}")
    _positive("n_init", n_init)
    _positive("n_lead", n_lead)
    return np.array(np.broadcast_to(c, (n_init, n_lead, *c.shape)))


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
