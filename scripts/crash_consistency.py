"""Crash consistency of the results store: kill `pairbench run` (SIGKILL, which nothing can catch) at random
moments, the parent or its worker, then check what it left and that `--resume` completes the sweep.

Each trial runs a small sweep (two batch sizes, the frameworks asked for) into a fresh folder, kills it at a
random moment within the time an uninterrupted sweep takes (measured first), and checks:
- every line of records.jsonl is a valid record, but for at most one partial last line (a write cut short);
- no completed record is missing: each run the parent reported done ("[torch] ok") is in the file;
- nothing it started lives on: no worker of the killed run is left after a few seconds;
- `pairbench run --resume` completes the sweep (exit 0), sets aside any partial line (records.jsonl.torn), keeps
  every record written before, and leaves each point with a successful run per framework.

    python scripts/crash_consistency.py                          # 50 trials, both frameworks (about 40 min)
    python scripts/crash_consistency.py --trials 3 --frameworks torch

Prints one line per trial and a summary: how many trials killed the parent, a worker, and nothing (the sweep had
ended, or the process ended before the signal reached it: known from what happened, not from what was intended),
and how many records were lost (reported done but not in the file, or written before the kill and missing after
--resume). Exits 1 if any trial found an inconsistency or lost a record."""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.records.store import TORN_SUFFIX, read_records, read_records_lenient, records_path  # noqa: E402

BATCHES = "1,2"
SWEEP = ["--no-skill", "--seed", "11", "--batch-size", BATCHES, "--warmup-steps", "0", "--train-steps", "2"]
SWEEP += ["--forward-steps", "2", "--threads", "1"]
STATUS_LINE = re.compile(r"^\[(\w+)\] (ok|failed|unavailable)\b", re.M)
WORKER = "runners.execution.worker"


def command(results: Path, frameworks: str, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "runners.cli", "run", *SWEEP, "--frameworks", frameworks]
    return cmd + ["--results-dir", str(results)] + (["--resume"] if resume else [])


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # what the parent printed before it died is in its log
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def workers_of(results: Path) -> list:
    """Live worker processes started for ``results`` (their request file lies in it)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info["cmdline"] or []
        if WORKER in cmdline and any(str(results) in part for part in cmdline):
            found.append(p)
    return found


def lines_of(path: Path) -> tuple[list[bytes], bytes]:
    """The whole lines of ``path`` and its partial last line (b"" when it ends in a newline)."""
    data = path.read_bytes() if path.is_file() else b""
    whole, _, partial = data.rpartition(b"\n")
    return [ln for ln in whole.split(b"\n") if ln.strip()] if whole or data.endswith(b"\n") else [], partial


def kill_worker_of(parent: subprocess.Popen) -> str | None:
    """SIGKILL the first live worker of ``parent``. None where there was none alive (look again); "sent" where the
    signal was delivered; "killed" where it was delivered to a live process (not a zombie) that is then gone:
    SIGKILL cannot be caught, so it died by it."""
    import psutil

    try:
        kids = [p for p in psutil.Process(parent.pid).children() if WORKER in (p.cmdline() or [])]
        kids = [p for p in kids if p.status() != psutil.STATUS_ZOMBIE]
        if not kids:
            return None
        kids[0].send_signal(signal.SIGKILL)  # psutil checks the pid is still this process, not a reused one
    except psutil.Error:  # the parent or the worker ended meanwhile
        return None
    gone, _ = psutil.wait_procs(kids[:1], timeout=30)  # reaped by the parent, as a killed worker is
    return "killed" if gone else "sent"


def kill_run(results: Path, frameworks: str, at_s: float, target: str, log: Path) -> dict:
    """Start the sweep, and at ``at_s`` seconds SIGKILL the parent, or (``target`` "worker") the first worker
    alive at or after that moment. Returns what happened: ``killed`` is "parent" only where the parent died by
    the signal (its exit status says so), "worker" only where a live worker received it and died, else None."""
    import psutil

    with open(log, "w") as out:
        parent = subprocess.Popen(
            command(results, frameworks, resume=False), cwd=ROOT, env=environment(), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + at_s
        while time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.02)
        killed = None
        sent = False
        while parent.poll() is None and not sent:
            if target == "parent":
                try:
                    os.kill(parent.pid, signal.SIGKILL)  # our own child, unreaped: its pid cannot be reused
                    sent = True
                except ProcessLookupError:
                    break
            else:
                outcome = kill_worker_of(parent)
                sent = outcome is not None
                killed = "worker" if outcome == "killed" else None
                if not sent:
                    time.sleep(0.05)
        parent.wait()
    if target == "parent" and sent and parent.returncode == -signal.SIGKILL:
        killed = "parent"  # not where it had exited by itself between the last poll and the signal
    lingering = []
    if killed == "parent":
        _, lingering = psutil.wait_procs(workers_of(results), timeout=15)
    return {"killed": killed, "exit": parent.returncode, "lingering": lingering}


def check_trial(results: Path, frameworks: str, at_s: float, target: str) -> tuple[str, list[str], str | None, int]:
    """Run one trial; returns (a summary, the problems found, what it killed: "parent", "worker" or None, the number
    of records lost)."""
    problems = []
    log = results.parent / f"{results.name}.log"
    what = kill_run(results, frameworks, at_s, target, log)
    path = records_path(results)
    whole, partial = lines_of(path)
    before = b"\n".join(whole).decode("utf-8", errors="replace") + "\n"
    probe = results.parent / f"{results.name}.whole.jsonl"
    probe.write_text(before if whole else "")
    records, skipped = read_records_lenient(probe) if whole else ([], [])
    problems += [f"invalid line after the kill: {s}" for s in skipped]
    reported = STATUS_LINE.findall(log.read_text(errors="replace"))
    runs = [r for r in records if r["record_type"] == "run"]
    lost = max(0, len(reported) - len(runs))
    if lost:
        problems.append(f"{len(reported)} run(s) reported done but only {len(runs)} recorded")
    if what["lingering"]:
        problems.append(f"{len(what['lingering'])} worker(s) still alive 15 s after the parent was killed")

    resume_log = results.parent / f"{results.name}.resume.log"
    with open(resume_log, "w") as out:
        done = subprocess.run(
            command(results, frameworks, resume=True), cwd=ROOT, env=environment(), stdout=out,
            stderr=subprocess.STDOUT, timeout=1800,
        )  # fmt: skip
    if done.returncode != 0:
        problems.append(f"--resume exited with {done.returncode} (log: {resume_log})")
    try:
        after = read_records(path)  # strict: nothing partial or invalid is left in the file
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        problems.append(f"records unreadable after --resume: {exc}")
        after = []
    missing = sum(1 for r in records if r not in after)
    if missing or after[: len(records)] != records:
        problems.append(f"{missing} record(s) written before the kill missing after --resume, or moved or changed")
    lost += missing
    if partial:
        aside = path.with_name(path.name + TORN_SUFFIX)
        if not aside.is_file() or partial not in aside.read_bytes():
            problems.append("the partial last line was not set aside")
    for batch in BATCHES.split(","):
        for fw in frameworks.split(","):
            ok = [
                r
                for r in after
                if r["record_type"] == "run" and r["framework"] == fw and r["status"] == "ok"
                and r["batch_size"] == int(batch)
            ]  # fmt: skip
            if not ok:
                problems.append(f"after --resume, no successful {fw} run at batch {batch}")
    victim = what["killed"] or f"nothing (the sweep exited with {what['exit']})"
    summary = (
        f"kill {target} at {at_s:5.1f} s: killed {victim}, "
        f"{len(runs)} run record(s) before, partial line: {'yes' if partial else 'no'}, "
        f"{len(after)} record(s) after --resume"
    )
    return summary, problems, what["killed"], lost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--frameworks", default="torch,mindspore")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--workdir", type=Path, default=None, help="where the trials' folders go (a temporary one)")
    args = ap.parse_args(argv)
    if args.trials < 1:
        print("crash_consistency: --trials must be at least 1", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="pairbench-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    calibration = subprocess.run(
        command(work / "calibration", args.frameworks, resume=False), cwd=ROOT, env=environment(),
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    span = time.perf_counter() - t0
    if calibration.returncode != 0:
        print(f"crash_consistency: the uninterrupted sweep failed:\n{calibration.stdout[-2000:]}", file=sys.stderr)
        return 2
    print(f"uninterrupted sweep ({args.frameworks}, batches {BATCHES}): {span:.1f} s; files in {work}")
    bad, lost, killed = 0, 0, {"parent": 0, "worker": 0, None: 0}
    for i in range(args.trials):
        target = ("parent", "worker")[i % 2]  # both, in turn; the moment is random
        at_s = rng.uniform(0.2, span)
        summary, problems, what, n_lost = check_trial(work / f"trial-{i:03d}", args.frameworks, at_s, target)
        bad += bool(problems)
        lost += n_lost
        killed[what] += 1
        print(f"trial {i + 1:3d}: {summary}: " + ("consistent" if not problems else "; ".join(problems)), flush=True)
    print(f"killed the parent: {killed['parent']}, a worker: {killed['worker']}, nothing: {killed[None]}")
    print(f"lost records: {lost}")
    print(f"{args.trials - bad}/{args.trials} trials consistent")
    return 1 if bad or lost else 0


if __name__ == "__main__":
    sys.exit(main())
