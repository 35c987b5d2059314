"""The built-in data set: one barotropic beta-plane trajectory, generated once per machine, cached
under its content hash and served at the grids of the FourCastNet configurations."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runners.data.barotropic import CHANNELS, BarotropicConfig, coarsen, generate
from runners.data.files import npy_problem, say_regenerating
from runners.data.source import ArraySource, DataError, InvalidDataError

# 1,200 model steps on a 64 x 128 grid: about 15 s to generate on one CPU core, 118 MB as float32.
BUILTIN = BarotropicConfig(nlat=64, nlon=128, n_steps=1200, substeps=8, spinup_steps=100)
TRAIN = (0, 1000)
TEST = (1000, 1200)
WEIGHTS_CONVENTION = "uniform"  # equal-area cells of a plane, not a sphere


def cache_dir() -> Path:
    """``$PAIRBENCH_CACHE`` or ``~/.cache/pairbench``."""
    return Path(os.environ.get("PAIRBENCH_CACHE") or Path.home() / ".cache" / "pairbench")


@dataclass(frozen=True)
class BuiltinData:
    path: Path
    source: ArraySource
    meta: dict
    train: tuple[int, int]
    test: tuple[int, int]
    weights_convention: str = WEIGHTS_CONVENTION


def builtin_dataset(
    img_size: tuple[int, int], cfg: BarotropicConfig = BUILTIN, cache: Path | None = None, progress=None
) -> BuiltinData:
    """The trajectory at ``img_size`` (the generated grid or a whole-factor coarsening of it)."""
    h, w = img_size
    factor = cfg.nlat // h if h else 0
    if h <= 0 or cfg.nlat % h or (h * factor, w * factor) != (cfg.nlat, cfg.nlon):
        raise InvalidDataError(
            f"the built-in data ({cfg.nlat} x {cfg.nlon}) has no {h} x {w} version; "
            "use a grid that divides it by a whole factor"
        )
    cache = Path(cache or cache_dir())
    where = f"the data cache {cache}" + (" (PAIRBENCH_CACHE)" if os.environ.get("PAIRBENCH_CACHE") else "")
    if cache.exists() and not cache.is_dir():
        raise DataError(f"{where} is a file, not a directory; set PAIRBENCH_CACHE to a directory")
    try:
        fine_path, meta = generate(cfg, cache, progress)
        path = fine_path if factor == 1 else fine_path.with_name(f"fields_{h}x{w}.npy")
        problem = npy_problem(path, (cfg.n_steps, len(CHANNELS), h, w), np.float32)
        if problem is not None:  # not made yet, or damaged (a file cut short): made again from the generated grid
            if os.path.lexists(path):
                say_regenerating(problem)
            tmp = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp, coarsen(np.load(fine_path), factor).astype(np.float32))
            tmp.replace(path)
    except OSError as exc:  # a read-only file system, no permission, a full disk
        raise DataError(
            f"the built-in data cannot be written into {where} ({exc.strerror or exc}); "
            "set PAIRBENCH_CACHE to a writable directory"
        ) from None
    try:
        data = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:  # changed since it was checked (another process writing it, say)
        raise DataError(f"cache file {path} cannot be read ({exc}); delete it, and it is made again") from None
    lats = np.linspace(90.0, -90.0, h)  # labels only: the plane's weights are uniform
    lons = np.arange(w) * (360.0 / w)
    source = ArraySource(data, CHANNELS, lats, lons, time_step_hours=6.0)
    meta = {**meta, "grid": [h, w], "coarsening": factor, "file": str(path)}
    n = data.shape[0]
    train, test = (TRAIN, TEST) if n >= TEST[1] else ((0, int(n * 0.8)), (int(n * 0.8), n))
    return BuiltinData(path, source, json.loads(json.dumps(meta)), train, test)
