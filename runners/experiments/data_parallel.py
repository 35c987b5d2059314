"""Data-parallel training as an experiment: each framework trained over ``nproc`` processes (per node) through its
launcher (runners.experiments.distributed), beside one process with the same global batch; a point per global
batch, a record per framework that holds its own comparison with one process."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from runners.data.synthetic import DATA_GENERATOR
from runners.experiments.distributed import backend_for, run_data_parallel, threads_per_rank, to_record
from runners.experiments.skeleton import Experiment, Outcome, Point, expand, point_identity, run_point
from runners.options import DataParallelOptions
from runners.weights.canonical import starting_weights, weights_digest
from runners.workloads.registry import get_workload


class DataParallel(Experiment):
    task = "data_parallel"

    def points(self, opts: DataParallelOptions, progress) -> list[Point]:
        for fw in opts.frameworks:
            backend_for(fw, opts.device)
        spec = get_workload(opts.workload)
        seed = secrets.randbits(31) if opts.seed is None else opts.seed
        tensors, weights_source = starting_weights(spec.model, opts.weights, seed)
        topo = opts.topology
        node = f"-node{topo.node_rank}of{topo.nnodes}" if topo.nnodes > 1 else ""
        ident = point_identity(
            "data_parallel",
            spec,
            digest=weights_digest(tensors),
            seed=seed,
            data={"generator": DATA_GENERATOR},
            batch_size=opts.global_batch,
            threads=opts.threads or threads_per_rank(opts.device, opts.nproc),
            warmup_steps=opts.warmup_steps,
            train_steps=opts.train_steps,
            nproc=opts.world,
        )
        name = f"{spec.name}-dp{opts.world}{node}-b{opts.global_batch}-{seed}"
        return [Point(spec, name, ident, tensors, {"weights_source": weights_source})]

    def announce(self, framework: str, point: Point, opts: DataParallelOptions) -> str:
        topo = opts.topology
        where = f" (node {topo.node_rank} of {topo.nnodes}, {opts.nproc} here)" if topo.nnodes > 1 else ""
        beside = "" if topo.node_rank > 0 else ", and 1 process beside"
        batch = opts.global_batch
        return f"[{framework}] {point.spec.name}: {opts.world} processes{where}, global batch {batch}{beside} ..."

    def execute(self, run, prefix: Path, opts: DataParallelOptions, progress) -> dict:
        return run_data_parallel(
            run.workload,
            run.framework,
            opts.nproc,
            run.batch_size,
            steps=run.train_steps,
            warmup=run.warmup_steps,
            seed=run.seed,
            device=run.device,
            results_dir=prefix,
            timeout_s=opts.timeout_s,
            reference=True,
            weights=run.weights,
            threads=run.threads,
            topology=opts.topology,
        )

    def record(self, head: dict, framework: str, run, result: dict, point: Point, run_dir: Path) -> dict:
        return to_record(result, head)

    def finished(self, rec: dict, opts: DataParallelOptions) -> str:
        fw = rec["framework"]
        if rec["status"] != "ok":
            return f"[{fw}] {rec['status']}: {rec['reason']}"
        if "reference_samples_per_s" not in rec:  # a node other than 0: node 0 compares with one process
            return f"[{fw}] ok: node {opts.node_rank}'s ranks done; node 0's record compares the run with 1 process"
        return (
            f"[{fw}] ok: {rec['samples_per_s_total']:.4g} samples/s in total, "
            f"{rec['samples_per_s_per_device']:.4g} per process; 1 process {rec['reference_samples_per_s']:.4g}; "
            f"scaling efficiency {rec['scaling_efficiency']:.2f}; losses within {rec['loss_max_rel_diff']:.1e} "
            "of 1 process"
        )


def plan_data_parallel(opts: DataParallelOptions, batch_sizes) -> list[DataParallelOptions]:
    """A point per global batch (None: two samples per process), each validated before the first runs."""
    return expand(lambda **given: replace(opts, **given), batch_size=batch_sizes or (None,))


def run_data_parallel_point(opts: DataParallelOptions, progress=print) -> Outcome:
    """One global batch of a data-parallel run, in each framework."""
    opts.validate()
    exp = DataParallel()
    (point,) = exp.points(opts, progress)
    return run_point(exp, opts, point, progress)
