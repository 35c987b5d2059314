"""Built-in ocean geometry: idealised continents, shelves and sea-floor depth on any lat-lon grid.

One analytic field of (latitude, longitude), evaluated at cell centres, so that every grid and every
depth level sees the same continents: a cell is ocean at depth z when the sea floor lies below z.
Land at the surface is where the continent field is positive; away from the coast the sea floor deepens
from a shelf to 5,000 m, so deeper levels have more land cells than the surface, as in the study's
per-channel land mask. Imports no framework.
"""

from __future__ import annotations

import numpy as np

OCEAN_VARIABLES = ("t", "s", "u", "v")  # by depth level (t0, t6, ..., v500), then sea-surface height
# Atmospheric forcings at the input time: 10 m wind (named u10m/v10m, since u10 is the current at 10 m),
# 2 m temperature, mean sea-level pressure, precipitation; then the static field.
FORCING_CHANNELS = ("u10m", "v10m", "t2m", "msl", "tp")
STATIC_CHANNELS = ("orog",)
MAX_DEPTH_M = 5000.0
# Continents as smooth ellipses: (centre lat, centre lon, lat half-axis, lon half-axis), degrees.
CONTINENTS = (
    (15.0, 285.0, 52.0, 22.0),  # a meridional continent, as the Americas close the Atlantic and Pacific
    (12.0, 25.0, 40.0, 30.0),  # a western block of the eastern continent
    (45.0, 95.0, 22.0, 55.0),  # its zonal northern arm
    (-25.0, 135.0, 11.0, 17.0),  # an island continent
)
POLAR_CAP_LAT = -72.0  # a southern polar continent south of this latitude


def ocean_channels(depths_m) -> tuple[str, ...]:
    """The ocean variables in the study's order: t, s, u, v at each depth (``t0``, ``s50``, ...), then ``ssh``."""
    return tuple(f"{v}{int(d)}" for v in OCEAN_VARIABLES for d in depths_m) + ("ssh",)


def channels(depths_m) -> tuple[str, ...]:
    """All channels of an ocean data set: the ocean variables, the forcings, the static field."""
    return ocean_channels(depths_m) + FORCING_CHANNELS + STATIC_CHANNELS


def cell_centres(img_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (north to south) and longitudes (east from 0) of cell centres, degrees."""
    h, w = (int(v) for v in img_size)
    if h < 2 or w < 2:
        raise ValueError(f"a grid needs at least 2 x 2 cells, got {h} x {w}")
    lats = 90.0 - (np.arange(h) + 0.5) * (180.0 / h)
    lons = (np.arange(w) + 0.5) * (360.0 / w)
    return lats, lons


def continent_field(img_size: tuple[int, int]) -> np.ndarray:
    """Positive on land, negative at sea and more negative away from the coast; float64 (lat, lon)."""
    lats, lons = cell_centres(img_size)
    lat, lon = np.meshgrid(lats, lons, indexing="ij")
    field = (POLAR_CAP_LAT - lat) / 12.0
    for clat, clon, alat, alon in CONTINENTS:
        dlon = (lon - clon + 180.0) % 360.0 - 180.0
        field = np.maximum(field, 1.0 - ((lat - clat) / alat) ** 2 - (dlon / alon) ** 2)
    return field


def sea_floor_depth_m(img_size: tuple[int, int]) -> np.ndarray:
    """Depth of the sea floor (m, positive down), 0 on land; float64 (lat, lon).

    Shelves: the depth grows as the square of ``1 - exp(-distance / 0.6)`` in the continent field's
    units, so the first cells off a coast are tens to hundreds of metres deep.
    """
    off = np.maximum(-continent_field(img_size), 0.0)
    return MAX_DEPTH_M * (1.0 - np.exp(-off / 0.6)) ** 2


def orography_m(img_size: tuple[int, int]) -> np.ndarray:
    """Surface height (m): land elevation up to 2,000 m, minus the sea-floor depth at sea."""
    field = continent_field(img_size)
    return np.where(field > 0, 2000.0 * np.minimum(field, 1.0), -sea_floor_depth_m(img_size))


def ocean_mask(img_size: tuple[int, int], depths_m) -> np.ndarray:
    """Boolean (level, lat, lon): True where the sea floor lies below each depth (and at the surface, at sea).

    Examples
    --------
    >>> m = ocean_mask((32, 64), (0, 200))
    >>> m.shape, bool(m[1].sum() < m[0].sum())
    ((2, 32, 64), True)
    """
    floor = sea_floor_depth_m(img_size)
    return np.stack([floor > max(float(d), 0.0) for d in depths_m])
