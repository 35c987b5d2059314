"""Data-parallel training through torchrun and msrun: launch, collect per-rank results, throughput and scaling."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrics.timing import summarize
from runners.devices import MINDSPORE_BACKENDS, TORCH_BACKENDS, parse_device
from runners.errors import PairbenchError
from runners.execution.lifeline import die_with_parent
from runners.experiments.runs import worker_env
from runners.options import Topology, check_split
from runners.records import schema
from runners.spec import RunConfig, check_framework
from runners.weights.canonical import save_weights
from runners.workloads.registry import get_workload

ROOT = Path(__file__).resolve().parents[2]  # the checkout: runners/experiments/ is two levels down
LAUNCHERS = {"torch": "torchrun", "mindspore": "msrun"}
LINGER_S = 25.0  # a launcher still running this long after its last rank exited is stopped
MS_NODE_TIMEOUT_S = 10  # seconds before msrun's scheduler declares a silent rank dead (MindSpore's default is ~30)
_LOG_NOISE = re.compile(r"^\[(INFO|WARNING|DEBUG)\]|^-+$|^\*+$|^- C\+\+ Call Stack|^mindspore/ccsrc/")
_TORCHRUN_EXIT = re.compile(r"exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)")
_MSRUN_EXIT = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
_ERROR_LINE = re.compile(r"^pairbench:|^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def free_port() -> int:
    """A TCP port on the loopback interface that the kernel reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_for(framework: str, device: str) -> str:
    """The collective backend a framework uses on a device kind; an unsupported pair is a PairbenchError."""
    kind = parse_device(device).kind
    table = TORCH_BACKENDS if framework == "torch" else MINDSPORE_BACKENDS
    if kind not in table:
        raise PairbenchError(f"{framework} data parallel has no backend for {kind}")
    return table[kind]


def threads_per_rank(device: str, nproc: int) -> int | None:
    """On the CPU a rank's "device" is an equal share of the cores; on accelerators frameworks keep their default."""
    if parse_device(device).kind != "cpu":
        return None
    return max(1, (os.cpu_count() or 1) // nproc)


def _python_shim(job: Path) -> Path:
    """msrun starts workers as ``python SCRIPT``; a ``python`` first on PATH that is this interpreter."""
    bin_dir = job / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def launch_command(framework: str, nproc: int, port: int, job: Path, request: Path, topo: Topology = Topology()):
    """torchrun or msrun, run by this interpreter, starting ``nproc`` copies of runners.execution.dp_worker on this
    node of ``topo``. msrun starts its scheduler on every node whose address is the master's; on a node other than
    0 it runs through runners.execution.msrun_node, which leaves the scheduler to node 0 (so that several "nodes"
    can share one host, as the loopback test does)."""
    worker = ["-m", "runners.execution.dp_worker", str(request)]
    if framework == "torch":
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", str(topo.nnodes), "--node-rank",
            str(topo.node_rank), "--nproc-per-node", str(nproc), "--master-addr", topo.master_addr, "--master-port",
            str(port), "--max-restarts", "0", "--monitor-interval", "0.5", *worker,
        ]  # fmt: skip
    msrun = "runners.execution.msrun_node" if topo.node_rank > 0 else "mindspore.parallel.cluster.run"
    nodes = ["--node_rank", str(topo.node_rank)] if topo.nnodes > 1 else []
    return [
        sys.executable, "-m", msrun, "--worker_num", str(nproc * topo.nnodes), "--local_worker_num", str(nproc),
        "--master_addr", topo.master_addr, "--master_port", str(port), *nodes, "--log_dir", str(job / "logs"),
        "--join", "True", "--cluster_time_out", "120", "python", *worker,
    ]  # fmt: skip


def launch_env(framework: str, device: str, job: Path) -> dict[str, str]:
    env = worker_env()
    env["PYTHONUNBUFFERED"] = "1"
    if parse_device(device).kind == "cpu":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    if framework == "mindspore":
        env["PATH"] = os.pathsep.join([str(_python_shim(job)), env.get("PATH", "")])
        env.setdefault("MS_NODE_TIMEOUT", str(MS_NODE_TIMEOUT_S))
    return env


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill the launcher and every process it started (msrun puts its workers in sessions of their own)."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in [*family, proc]:
        try:
            p.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    proc.wait()


def _ranks_gone(job: Path, ranks: range) -> bool:
    """Whether every rank has started (it wrote its pid) and has since exited."""
    import psutil

    pids = [job / f"rank_{r}.pid" for r in ranks]
    if not all(p.is_file() and p.read_text().isdigit() for p in pids):
        return False
    for p in pids:
        try:
            if psutil.Process(int(p.read_text())).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def _run_launcher(cmd: list[str], env: dict[str, str], job: Path, ranks: range, timeout_s: float) -> dict:
    """Run the launcher with its output in launcher.log. Returns its exit code (None if it had to be killed),
    seconds, and ``stopped``: "timeout", or "linger" when it outlived all its ranks by LINGER_S (msrun's scheduler
    waits up to --cluster_time_out for ranks that died before joining the cluster)."""
    t0 = time.perf_counter()
    stopped, gone_since = None, None
    with open(job / "launcher.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )  # fmt: skip
        while proc.poll() is None:
            now = time.perf_counter()
            if now - t0 > timeout_s:
                stopped = "timeout"
            elif _ranks_gone(job, ranks):
                gone_since = gone_since or now
                stopped = "linger" if now - gone_since > LINGER_S else None
            if stopped:
                _kill_tree(proc)
                break
            time.sleep(0.25)
    rc = None if stopped else proc.returncode
    return {"rc": rc, "wall_s": time.perf_counter() - t0, "stopped": stopped}


def telling_line(path: Path) -> str:
    """The line of a log that best says why a process stopped: our own or a Python exception, else the last."""
    if not path.is_file():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _ERROR_LINE.search(ln):
            return ln
    quiet = [ln for ln in lines if not _LOG_NOISE.search(ln)]
    return (quiet or lines or [""])[-1]


def _read_ranks(job: Path, ranks: range) -> dict[int, dict | None]:
    out = {}
    for r in ranks:
        path = job / f"rank_{r}.json"
        out[r] = json.loads(path.read_text()) if path.is_file() else None
    return out


def exit_report(job: Path) -> list[tuple[int, int]]:
    """(rank, exit code) of the ranks the launcher saw fail, first observed first.

    torchrun prints ``exitcode : C (pid: P)`` per failed rank, msrun ``Worker process P exit with exception.
    Error code: C``; each rank wrote its pid to ``rank_R.pid`` when it started."""
    pids = {int(p.read_text()): int(p.stem.split("_")[1]) for p in job.glob("rank_*.pid") if p.read_text().isdigit()}
    log = (job / "launcher.log").read_text(errors="replace") if (job / "launcher.log").is_file() else ""
    cut = log.find("Root Cause")  # torchrun lists the other failures before the first observed one
    log = log[cut:] + log[:cut] if cut >= 0 else log
    found = [(int(p), int(c)) for c, p in _TORCHRUN_EXIT.findall(log)]
    found += [(int(p), int(c)) for p, c in _MSRUN_EXIT.findall(log)]
    out = []
    for pid, code in found:
        if pid in pids and pids[pid] not in [r for r, _ in out]:
            out.append((pids[pid], code))
    return out


def _rank_story(r: int, res: dict | None, code: int | None, job: Path) -> str:
    if res is not None:
        return res.get("reason", f"rank {r} failed")
    line = telling_line(job / "logs" / f"worker_{r}.log") or telling_line(job / "launcher.log")
    how = f"exited with code {code}" if code is not None else "stopped"
    return f"rank {r} {how} without a result (last log line: {line[:300] or 'none'})"


def _launcher_end(launcher: str, run: dict, timeout_s: float) -> str:
    if run["stopped"] == "timeout":
        return f"{launcher} timed out after {timeout_s:g} s"
    if run["stopped"] == "linger":
        return f"{launcher} was still running {LINGER_S:g} s after its last rank had exited and was stopped"
    return f"{launcher} exited with code {run['rc']}"


def failure_reason(launcher: str, run: dict, timeout_s: float, ranks: dict[int, dict | None], job: Path) -> str:
    """One sentence: how the launcher ended, then the first rank the launcher saw fail (every failing rank where
    the launcher names none), then the ranks that stopped after it."""
    head = _launcher_end(launcher, run, timeout_s)
    report = exit_report(job)
    codes = dict(report)
    bad = [r for r, res in ranks.items() if res is None or res.get("status") != "ok"]
    first = [r for r, _ in report if r in bad][:1]
    culprits = first if first and run["stopped"] != "timeout" else bad
    parts = [_rank_story(r, ranks[r], codes.get(r), job) for r in culprits]
    others = [r for r in bad if r not in culprits]
    if others:
        parts.append(f"then rank(s) {', '.join(map(str, others))} stopped too")
    if not parts:
        parts.append(f"every rank finished but the launcher failed (last line: {telling_line(job / 'launcher.log')})")
    return f"{head}; " + "; ".join(parts)


def summarize_ranks(ranks: dict[int, dict], global_batch: int, world: int | None = None) -> dict:
    """Losses of this node's first rank (already averaged over all ranks), its ranks' step times and throughput.

    A data-parallel step ends when its slowest rank ends, so step i's time is the maximum over ranks (over this
    node's, on one of several nodes; each node's record holds its own ranks)."""
    n = world or len(ranks)
    first = min(ranks)
    per_rank = {r: ranks[r]["step_ms"] for r in sorted(ranks)}
    step_ms = [float(v) for v in np.max(np.array(list(per_rank.values())), axis=0)]
    stats = summarize(step_ms, "step")
    total = global_batch / (stats["step_ms_p50"] / 1e3)
    return {
        "losses": ranks[first]["losses"],
        "step_ms": step_ms,
        "step_ms_per_rank": {str(r): v for r, v in per_rank.items()},
        **stats,
        "samples_per_s_total": total,
        "samples_per_s_per_device": total / n,
        "replicas_identical": len({res["params_digest"] for res in ranks.values()}) == 1,
        "threads_per_rank": ranks[first]["threads"],
        "framework_version": ranks[first]["framework_version"],
    }


@dataclass(frozen=True)
class DPJob:
    """What every launch of one data-parallel comparison shares; only the process count differs."""

    framework: str
    workload: str
    global_batch: int
    steps: int
    warmup: int
    seed: int
    device: str
    weights: Path
    threads: int | None  # per rank, on the CPU; the 1-process reference gets the same share
    timeout_s: float

    def _shared(self) -> dict:
        return {
            "framework": self.framework,
            "workload": self.workload,
            "device": self.device,
            "global_batch": self.global_batch,
            "steps": self.steps,
            "warmup": self.warmup,
            "seed": self.seed,
            "weights": str(self.weights),
        }

    def base(self, nproc: int) -> dict:
        return {**self._shared(), "mode": "data_parallel", "nproc": nproc, "launcher": LAUNCHERS[self.framework]}

    def request(self, out_dir: Path, world: int) -> dict:
        """What runners.execution.dp_worker reads: every rank's run (a RunConfig: fp32 eager forecast steps on the
        global batch, one rank of ``world``) and where its launch writes."""
        run = RunConfig(
            workload=self.workload,
            framework=self.framework,
            weights=str(self.weights),
            device=self.device,
            threads=self.threads,
            batch_size=self.global_batch,
            warmup_steps=self.warmup,
            train_steps=self.steps,
            forward_steps=0,
            seed=self.seed,
            task="data_parallel",
            hyper_parameters=get_workload(self.workload).hyper_parameters(),
            distributed={"backend": backend_for(self.framework, self.device), "world": world},
        )
        return {"run": run.to_dict(), "out_dir": str(out_dir), "log_dir": str(out_dir / "logs")}


def run_job(job: DPJob, nproc: int, out_dir: Path, topo: Topology = Topology()) -> dict:
    """One launch of ``nproc`` ranks on this node of ``topo``; a result with status ``ok``, ``failed`` or
    ``unavailable`` and its reason. On one of several nodes the result covers this node's ranks."""
    world = nproc * topo.nnodes
    base = job.base(world)
    base.update(local_batch=check_split(job.global_batch, world), backend=backend_for(job.framework, job.device))
    port = topo.master_port or free_port()
    if topo.nnodes > 1:
        base.update(nnodes=topo.nnodes, node_rank=topo.node_rank, master=topo.endpoint(port))
    out_dir.mkdir(parents=True, exist_ok=True)
    request = out_dir / "request.json"
    request.write_text(json.dumps(job.request(out_dir, world), indent=1))
    cmd = launch_command(job.framework, nproc, port, out_dir, request, topo)
    run = _run_launcher(cmd, launch_env(job.framework, job.device, out_dir), out_dir, topo.ranks(nproc), job.timeout_s)
    ranks = _read_ranks(out_dir, topo.ranks(nproc))
    rc = run["rc"]
    base.update(results_dir=str(out_dir), wall_s=run["wall_s"], launcher_exit_code=rc, launcher_stopped=run["stopped"])
    absent = [res for res in ranks.values() if res is not None and res.get("status") == "unavailable"]
    if absent:
        return {**base, "status": "unavailable", "reason": absent[0]["reason"]}
    all_ok = all(res is not None and res.get("status") == "ok" for res in ranks.values())
    if not all_ok or (rc != 0 and run["stopped"] != "linger"):
        reason = failure_reason(base["launcher"], run, job.timeout_s, ranks, out_dir)
        return {**base, "status": "failed", "reason": reason}
    return {**base, "status": "ok", **summarize_ranks(ranks, job.global_batch, world)}


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def _worst_rel_l2(job_n: Path, job_1: Path, name: str) -> float:
    """Worst relative L2 distance, over arrays, between rank 0's ``name`` of the N- and the 1-process runs."""
    with np.load(job_n / name) as an, np.load(job_1 / name) as a1:
        if sorted(an.files) != sorted(a1.files):
            return float("inf")
        worst = 0.0
        for k in a1.files:
            ref = a1[k].astype(np.float64)
            worst = max(worst, float(np.linalg.norm(an[k] - ref) / max(np.linalg.norm(ref), 1e-30)))
    return worst


def compare(result: dict, ref: dict) -> dict:
    """Scaling efficiency and agreement of an N-process run with its 1-process reference."""
    n = result["nproc"]
    return {
        "reference_samples_per_s": ref["samples_per_s_total"],
        "reference_step_ms_p50": ref["step_ms_p50"],
        "reference_losses": ref["losses"],
        "speedup": result["samples_per_s_total"] / ref["samples_per_s_total"],
        "scaling_efficiency": (result["samples_per_s_total"] / n) / ref["samples_per_s_total"],
        "loss_max_rel_diff": _max_rel(result["losses"], ref["losses"]),
        "grad0_max_rel_l2": _worst_rel_l2(Path(result["results_dir"]), Path(ref["results_dir"]), "grads0_rank0.npz"),
        "param_max_rel_l2": _worst_rel_l2(Path(result["results_dir"]), Path(ref["results_dir"]), "params_rank0.npz"),
    }


def _missing_framework(framework: str) -> str | None:
    module = {"torch": "torch", "mindspore": "mindspore"}[framework]
    if importlib.util.find_spec(module) is None:
        return f"{framework} is not installed in {sys.executable}"
    return None


def _default_dir(workload: str, framework: str, nproc: int, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return ROOT / "results" / f"{stamp}-dp-{workload}-{framework}-n{nproc}-{seed}"


def _weights_file(results_dir: Path, workload: str, seed: int, weights: str | Path | None) -> Path:
    if weights is not None:
        return Path(weights)
    cfg = get_workload(workload).model
    path = results_dir / "weights.safetensors"
    if not path.is_file():
        save_weights(path, cfg, cfg.init_weights(seed))
    return path


def run_data_parallel(
    workload: str,
    framework: str,
    nproc: int,
    global_batch: int,
    steps: int = 8,
    warmup: int = 2,
    seed: int = 0,
    device: str = "cpu",
    results_dir: str | Path | None = None,
    timeout_s: float = 600,
    reference: bool = False,
    weights: str | Path | None = None,
    threads: int | None = None,
    topology: Topology = Topology(),
) -> dict:
    """Train ``workload`` data-parallel over ``nproc`` processes with global batch ``global_batch``.

    ``steps`` timed Adam steps follow ``warmup`` untimed ones; losses cover all of them. With ``reference`` the
    same job also runs as one process (with the same ``threads`` per process: by default on the CPU an equal share
    of the cores for each of the ``nproc``), and the result gains scaling efficiency and the loss and parameter
    differences. Status is ``ok``, ``failed`` (crash, time-out: the reason names the launcher's exit code and the
    failing rank's last log line) or ``unavailable`` (framework not installed); a batch that does not split evenly
    or an unknown framework, workload or device raises PairbenchError. Over several nodes (``topology``) ``nproc``
    is per node, the global batch splits over all processes, and only node 0 runs the 1-process reference (it
    holds rank 0's arrays); each node's result covers its own ranks."""
    check_framework(framework)
    get_workload(workload)
    topology.check()
    check_split(global_batch, nproc * topology.nnodes)
    backend_for(framework, device)
    if steps < 1 or warmup < 0:
        raise PairbenchError(f"data parallel needs steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    missing = _missing_framework(framework)
    if missing:
        empty = DPJob(framework, workload, global_batch, steps, warmup, seed, device, Path(), None, timeout_s)
        return {**empty.base(nproc), "status": "unavailable", "reason": missing}
    # absolute: the launcher and its ranks run in the checkout, not in this process's working directory
    root = (Path(results_dir) if results_dir else _default_dir(workload, framework, nproc, seed)).absolute()
    root.mkdir(parents=True, exist_ok=True)
    wfile = _weights_file(root, workload, seed, weights).absolute()
    threads = threads or threads_per_rank(device, nproc)
    job = DPJob(framework, workload, global_batch, steps, warmup, seed, device, wfile, threads, timeout_s)
    result = run_job(job, nproc, root / f"{framework}-n{nproc}", topology)
    if not reference or result["status"] != "ok" or topology.node_rank > 0:
        return result
    ref = result if nproc * topology.nnodes == 1 else run_job(job, 1, root / f"{framework}-n1")
    if ref["status"] != "ok":
        return {**result, "status": "failed", "reason": f"the 1-process reference failed: {ref['reason']}"}
    return {**result, **compare(result, ref)}


# Fields of a result that the record holds under its identity's names (batch_size, train_steps, ...) or drops.
_AS_IDENTITY = (
    "mode", "workload", "nproc", "device", "global_batch", "steps", "warmup", "seed", "weights", "threads_per_rank",
    "step_ms_per_rank", "framework", "status", "reason",
)  # fmt: skip
_COMPARED = ("speedup", "scaling_efficiency", "loss_max_rel_diff", "grad0_max_rel_l2", "param_max_rel_l2")


def to_record(result: dict, head: dict) -> dict:
    """The validated record of a data-parallel ``result`` (see :func:`run_data_parallel`) under ``head``
    (runners.records.schema.header of :func:`identity`): per-rank step lists become ``step_ms_rank{r}``. A comparison
    with one process that is not finite fails the record, naming the figure."""
    fields = {k: v for k, v in result.items() if k not in _AS_IDENTITY}
    for r, v in result.get("step_ms_per_rank", {}).items():
        fields[f"step_ms_rank{r}"] = v
    status, reason = result["status"], result.get("reason")
    bad = [k for k in _COMPARED if k in fields and schema.finite_or_none(fields[k]) is None]
    if status == "ok" and bad:
        status, reason = "failed", f"{', '.join(bad)} not finite: the run cannot be compared with one process"
    if status == "ok":
        try:
            return schema.record(head, framework=result["framework"], status=status, **fields)
        except schema.RecordError as exc:
            status, reason = "failed", f"the result cannot be recorded: {exc}"
    keep = {f.name for f in schema.FIELDS["data_parallel"] if f.need != "ok"} - set(_COMPARED) - {"reason"}
    fields = {k: v for k, v in fields.items() if k in keep and not k.startswith("reference_")}
    return schema.record(head, framework=result["framework"], status=status, reason=reason, **fields)
