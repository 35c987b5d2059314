"""What the power sampler costs: process CPU time per second of window, as a fraction of one core, at
1, 10 and 50 Hz, beside a window without a sampler, measured side by side in one run.

    python scripts/sampler_overhead.py [--window 5] [--device cpu|cuda:0|ascend:0]

The main thread sleeps through each window, so the process's CPU time is the sampler's (plus the
interpreter's own idle cost, which the no-sampler row shows). Target: under 1 % of a core at 10 Hz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # as pairbench's workers run: CUDA numbers GPUs as NVML does

from metrics.power.collectors import collector_for  # noqa: E402
from runners.devices import parse_device  # noqa: E402


def measure(device: str, rate_hz: float | None, window_s: float) -> tuple[float, int, str]:
    """(CPU seconds used over the window, samples taken, collector source)."""
    collector = None
    if rate_hz is not None:
        dev = parse_device(device)
        collector = collector_for(dev.kind, dev.index, rate_hz)
    cpu0 = time.process_time()
    if collector:
        collector.start()
    time.sleep(window_s)
    result = collector.stop() if collector else None
    used = time.process_time() - cpu0
    if result is None:
        return used, 0, "-"
    return used, len(result.samples) + result.extra.get("power_samples_missing", 0), result.source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"device {args.device}, window {args.window:g} s per row")
    print(f"{'rate':>8} {'samples':>8} {'CPU s':>8} {'core %':>8}  source")
    measure(args.device, None, 1.0)  # let start-up work settle (numpy's BLAS threads spin briefly)
    for rate in (None, 1.0, 10.0, 50.0, None):
        used, n, source = measure(args.device, rate, args.window)
        label = "none" if rate is None else f"{rate:g} Hz"
        print(f"{label:>8} {n:>8d} {used:>8.4f} {100 * used / args.window:>7.3f}%  {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
