"""The data an experiment trains on, scores against or starts forecasts from: the built-in data set of a workload,
or the user's (``--data``), with the model configured from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runners.data.dataset import DataRequest, Dataset, open_dataset
from runners.data.source import InvalidDataError
from runners.data.stats import channel_stats, time_mean_climatology
from runners.errors import PairbenchError
from runners.spec import WorkloadSpec

# The data sets this process has opened, by request and patch size: each is streamed once (mask, statistics).
_OPENED: dict[tuple, Dataset] = {}
# What a model's configuration must have as settings of its own for --data to configure it from the data.
DATA_SHAPED = ("in_chans", "out_chans", "img_size", "patch_size")


def configured(spec: WorkloadSpec, request: DataRequest, progress=print) -> tuple[WorkloadSpec, Dataset]:
    """``spec`` (a named preset: width, depth, patch) with its channels and grid taken from the data, and the
    opened data. The grid is the file's, cropped to a multiple of the patch size."""
    fields = getattr(spec.model, "__dataclass_fields__", {})
    if not all(name in fields for name in DATA_SHAPED):
        raise PairbenchError(
            f"{spec.name}'s channels are fixed by its configuration, so it cannot take them from --data; "
            "use a fourcastnet workload as the preset"
        )
    key = (request, spec.model.patch_size)
    if key not in _OPENED:  # a sweep opens (and streams) the data once
        progress(f"opening {request.text} ...")
        _OPENED[key] = open_dataset(request, spec.model.patch_size, progress)
    data = _OPENED[key]
    n = len(data.channels)
    spec = spec.overridden({"in_chans": n, "out_chans": n, "img_size": list(data.img_size)})
    progress(
        f"{request.text}: {n} channel(s) ({', '.join(data.channels)}) on {data.img_size[0]} x {data.img_size[1]}, "
        f"{data.time_step_hours:g} h steps; train {data.train[0]}-{data.train[1] - 1}, test {data.test[0]}-"
        f"{data.test[1] - 1}; statistics {data.stats_source}"
    )
    return spec, data


def builtin(spec: WorkloadSpec, progress=print) -> Dataset:
    """The workload's built-in data set as a Dataset: statistics from its training split, the model's own output
    mask (AI-GOMS's land) as its mask of scored cells, and weights of its convention."""
    progress(f"built-in data at {spec.model.img_size[0]} x {spec.model.img_size[1]} ...")
    data = spec.model.builtin_data(progress=None)
    src = data.source
    if len(src.channels) != spec.model.in_chans:
        raise PairbenchError(
            f"{spec.name} takes {spec.model.in_chans} channels; the built-in data has {len(src.channels)}"
        )
    mean, std = channel_stats(src, *data.train)
    worker = {
        "kind": "npy",
        "path": str(data.path),
        "channels": list(src.channels),
        "lats_deg": src.lats_deg.tolist(),
        "lons_deg": src.lons_deg.tolist(),
        "time_step_hours": src.time_step_hours,
    }
    return Dataset(
        source=src,
        channels=tuple(src.channels),
        lats_deg=src.lats_deg,
        lons_deg=src.lons_deg,
        img_size=tuple(spec.model.img_size),
        time_step_hours=src.time_step_hours,
        train=tuple(data.train),
        test=tuple(data.test),
        mean=mean,
        std=std,
        clim=time_mean_climatology(src, *data.train),
        mask=None,
        weights_convention=data.weights_convention,
        stats_source="computed from the training split",
        identity={k: data.meta[k] for k in ("generator", "sha256", "grid")},
        worker=worker,
    )


def evenly(span: tuple[int, int], n: int, room: int, what: str, breaks=()) -> np.ndarray:
    """``n`` time indices spread evenly over ``span`` that leave ``room`` steps after each inside it, none of those
    steps crossing one of ``breaks`` (see Dataset.breaks)."""
    starts = np.arange(span[0], span[1] - room)
    crossing = [b for b in breaks if span[0] <= b < span[1]]
    starts = np.array([s for s in starts if not any(s <= b < s + room for b in crossing)], dtype=int)
    if starts.size == 0 or n < 1:
        raise PairbenchError(f"the {what} {tuple(span)} is too short for {n} start(s) with {room} steps after each")
    return np.unique(starts[np.linspace(0, starts.size - 1, n).astype(int)])


def save_mask(data: Dataset, folder: Path) -> str | None:
    """The data's mask of valid cells written for the workers (``mask.npy`` in ``folder``), or None without one."""
    if data.mask is None:
        return None
    path = folder / "mask.npy"
    np.save(path, data.mask.astype(np.float32))
    return str(path)


def forecast_inits(data: Dataset, room: int, batch: int) -> tuple[dict, dict, str]:
    """Initial conditions for ``batch`` forecasts from the test split: their identity, what the worker is told (its
    ``mask`` set once the run's folder exists, see :func:`save_mask`), and the record's label. Each forecast
    starts at its own time (repeated where the test split has fewer times than forecasts), with ``room`` steps
    after it where the model reads inputs it does not forecast at every lead."""
    last = data.test[1] - 1 - room
    if last < data.test[0]:
        raise InvalidDataError(
            f"the test split (time steps {data.test[0]}-{data.test[1] - 1}) is too short for a forecast that reads "
            f"the data {room} steps ahead; give --n-lead or a larger --test-fraction"
        )
    inits = np.linspace(data.test[0], last, batch).astype(int)
    worker = {
        "initial_conditions": "data",
        "source": data.worker,
        "inits": inits.tolist(),
        "mean": data.mean.tolist(),
        "std": data.std.tolist(),
        "mask": None,
    }
    label = f"{len(set(inits.tolist()))} time(s) of the test split, from step {inits[0]} to {inits[-1]}"
    return {"data": data.identity, "inits": inits.tolist()}, worker, label
