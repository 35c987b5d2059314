"""Framework-neutral readers of gridded weather data (ERA5 HDF5, netCDF/zarr), statistics and training batches."""

from runners.data.batches import rollout_truth, training_pairs
from runners.data.dataset import DATA_KINDS, LAT_WEIGHTS, DataRequest, Dataset, normalise, open_dataset, reopen
from runners.data.era5 import Era5Hdf5Source
from runners.data.source import (
    FOURCASTNET_CHANNELS,
    ArraySource,
    DataError,
    FieldSource,
    InvalidDataError,
    MissingDataError,
    check_range,
    iter_chunks,
    read_indices,
)
from runners.data.stats import (
    Normalizer,
    channel_stats,
    day_of_year_climatology,
    load_stats,
    save_stats,
    time_mean_climatology,
)
from runners.data.xarray_source import XarraySource

__all__ = [
    "DATA_KINDS",
    "FOURCASTNET_CHANNELS",
    "LAT_WEIGHTS",
    "ArraySource",
    "DataError",
    "DataRequest",
    "Dataset",
    "Era5Hdf5Source",
    "FieldSource",
    "InvalidDataError",
    "MissingDataError",
    "Normalizer",
    "XarraySource",
    "channel_stats",
    "check_range",
    "day_of_year_climatology",
    "iter_chunks",
    "load_stats",
    "normalise",
    "open_dataset",
    "read_indices",
    "reopen",
    "rollout_truth",
    "save_stats",
    "time_mean_climatology",
    "training_pairs",
]
