"""Measure the per-layer bounds of low-precision comparisons on this CPU (metrics/layer_bounds.py): run
``pairbench diagnose`` for each comparison over several seeds and store, per layer and per parameter gradient, the
largest relative L2 difference and the bound it gives, with this CPU's model name and features and the framework
versions. Entries for the same comparison, CPU features and versions are replaced; others are kept.

    python scripts/measure_layer_bounds.py [--seeds 1,2,3,4,5] [--workload fourcastnet-tiny] [--out FILE]

Prints one line per comparison: the largest layer and gradient differences measured. A comparison whose side is
unsupported here (MindSpore bf16 on CPU) is skipped, saying why."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from metrics.device.cpu import cpu_features
from metrics.device.machine import cpu_name
from metrics.layer_bounds import FILE, entry_from_diagnoses
from runners.experiments.diagnose import framework_versions, run_diagnose
from runners.options import DiagnoseOptions, parse_side

# (side a, side b, threads): compiled sides run on one thread (torch.compile's OpenMP kernels stall on 2 vCPUs).
COMPARISONS = (
    ("torch:precision=fp32", "torch:precision=bf16", None),
    ("torch:precision=fp32", "torch:precision=fp16", None),
    ("torch:precision=bf16", "torch:precision=bf16,mode=compiled", 1),
    ("torch:precision=fp16", "torch:precision=fp16,mode=compiled", 1),
    ("torch:precision=fp16", "mindspore:precision=fp16", None),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--workload", default="fourcastnet-tiny")
    ap.add_argument("--out", type=Path, default=FILE)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data = json.loads(args.out.read_text()) if args.out.exists() else {"entries": []}
    today = datetime.date.today().isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        for a, b, threads in COMPARISONS:
            sides = (parse_side(a), parse_side(b))
            records = []
            for seed in seeds:
                opts = DiagnoseOptions(
                    workload=args.workload, a=a, b=b, seed=seed, threads=threads, results_dir=Path(tmp)
                )
                records.append(run_diagnose(opts, progress=lambda s: None).record)
            if any(r["verdict"] == "not compared" for r in records):
                print(f"{a} vs {b}: skipped ({records[0].get('reason')})")
                continue
            entry = entry_from_diagnoses(records, cpu_name(), cpu_features(), framework_versions(*sides), today)
            key = (entry["workload"], entry["side_a"], entry["side_b"], entry["cpu_features"], entry["versions"])
            data["entries"] = [
                e for e in data["entries"]
                if (e["workload"], e["side_a"], e["side_b"], e["cpu_features"], e["versions"]) != key
            ] + [entry]  # fmt: skip
            worst = max(entry["layers"].items(), key=lambda kv: kv[1]["measured"])
            grad = max(entry["gradients"].items(), key=lambda kv: kv[1]["measured"])
            print(
                f"{entry['side_a']} vs {entry['side_b']}: largest layer difference {worst[1]['measured']:.3g} "
                f"({worst[0]}), largest gradient difference {grad[1]['measured']:.3g} ({grad[0]})"
            )
    tmp = args.out.with_name(args.out.name + ".tmp")  # written whole, then renamed: never a torn bounds file
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, args.out)
    print(f"written: {args.out} ({cpu_name()}; {cpu_features()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
