"""Every write path of a results folder: records are never a report's target, no file in a results folder is
opened through a planted link, a record the results file cannot take is kept beside its run and appended by the
next run, every OSError on a user's path is one sentence naming the path and the errno's meaning, Ctrl-C is one
line with exit 130, and Markdown reports escape link syntax."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch, run_python, run_record
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.build import render, write_report
from reports.output import check_target, write_file
from runners.errors import PairbenchError
from runners.records.store import (
    LOCK_NAME,
    PENDING_FILE,
    STORE_FILES,
    append_record,
    locked,
    read_records,
    ready_store,
    records_path,
    records_written,
    where_records_went,
)

RUN = "20261124T000000Z-fourcastnet-tiny-1"


def _results(tmp_path: Path) -> Path:
    """A results folder holding one run's folder and its two records."""
    results = tmp_path / "R"
    (results / RUN).mkdir(parents=True)
    for fw, step in (("torch", 10.0), ("mindspore", 20.0)):
        append_record(records_path(results), run_record(fw, steps=[step] * 20, run_id=RUN))
    return results


def _last_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in stderr, stderr
    return lines[-1]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_python(f"import sys; from runners.cli import main; sys.exit(main({list(args)!r}))", timeout)


# 1. records are never a report's target


def test_no_records_file_is_ever_a_report_target(tmp_path):
    results = _results(tmp_path)
    store = records_path(results)
    before = store.read_bytes()
    (tmp_path / "alias.html").symlink_to(store)
    (tmp_path / "copy.jsonl").write_bytes(before)
    with open(store, "a") as fh:  # a damaged file: the target is refused before the records are read
        fh.write("[1, 2]\n")
    before = store.read_bytes()
    for fmt in ("html", "md"):
        for target in (store, tmp_path / "alias.html", results / ".." / "R" / "records.jsonl"):
            with pytest.raises(PairbenchError, match="holds records, so it is never a report's target"):
                write_report([results], target, fmt)
        for name in STORE_FILES:  # any results folder's store, read or not
            with pytest.raises(PairbenchError, match="holds records"):
                write_report([results], tmp_path / "other" / name, fmt)
        with pytest.raises(PairbenchError, match="copy.jsonl exists and is not a pairbench report"):
            write_report([results], tmp_path / "copy.jsonl", fmt)
    with pytest.raises(PairbenchError, match="holds records"):  # the run's own path to the report
        render([run_record("torch", run_id=RUN)], store, "html", [str(store)])
    assert store.read_bytes() == before and (tmp_path / "copy.jsonl").read_bytes() != b""
    assert not list(tmp_path.glob("**/*.tmp")) and not (tmp_path / "other").exists()


def test_a_report_replaces_only_a_report_and_writes_no_folder_device_or_unwritable_place(tmp_path):
    results = _results(tmp_path)
    for fmt in ("html", "md"):  # its own report it replaces, again and again
        for _ in range(2):
            (out,) = write_report([results], tmp_path / f"r.{fmt}", fmt)
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.md").write_text("my notes\n")
    (tmp_path / "README.md").write_text("# tool\n\npairbench reports what you gain; see the pairbench report\n")
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / "dir": f"{tmp_path / 'dir'} is a folder: name the html report's file",
        Path("/dev/null"): "/dev/null is not a regular file",
        tmp_path / "notes.md": "notes.md exists and is not a pairbench report",
        tmp_path / "README.md": "README.md exists and is not a pairbench report",  # the words alone are not a report
        tmp_path / "file" / "r.html": f"cannot write the report {tmp_path / 'file' / 'r.html'}: "
        f"{tmp_path / 'file'} is not a folder",
    }
    for target, message in cases.items():
        with pytest.raises(PairbenchError, match=re.escape(message)):
            check_target(target, "html", [results])
    assert (tmp_path / "notes.md").read_text() == "my notes\n"
    written = write_report([results], tmp_path / "dir", "csv")  # for csv a folder is the target
    assert {"ratios.csv", "runs.csv", "summary.csv"} <= {p.name for p in written}


def test_run_with_records_or_a_folder_as_its_report_is_refused_before_any_work(tmp_path):
    results = _results(tmp_path)
    before = records_path(results).read_bytes()
    (results / "d").mkdir()
    for target, message in (
        (records_path(results), f"{records_path(results)} holds records, so it is never a report's target"),
        (results / "d", f"{results / 'd'} is a folder: name the html report's file"),
    ):
        for command in (["run", "--resume", "--seed", "1", "--no-skill"], ["forecast"]):
            proc = cli(*command, "--results-dir", str(results), "--report", str(target))
            assert proc.returncode == 2 and _last_line(proc.stderr).startswith(f"pairbench: error: {message}")
    assert records_path(results).read_bytes() == before
    assert {p.name for p in results.iterdir()} - {LOCK_NAME} == {RUN, "d", "records.jsonl"}  # no run folder


# 2. no link followed in a results folder


def test_planted_links_are_refused_by_name_and_their_targets_untouched(tmp_path):
    results = _results(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("victim\n")
    (results / LOCK_NAME).symlink_to(victim)
    with pytest.raises(PairbenchError, match=f"^{results / LOCK_NAME} is a symbolic link, which pairbench does not"):
        with locked(results):
            pass
    (results / LOCK_NAME).unlink()
    store = records_path(results)
    kept = store.rename(tmp_path / "kept.jsonl")
    store.symlink_to(victim)
    with pytest.raises(PairbenchError, match=f"^{store} is a symbolic link"):
        ready_store(results)
    said = []
    append_record(store, run_record("torch", run_id=RUN), warn=said.append)  # kept beside the run instead
    assert len(read_records(results / RUN / PENDING_FILE)) == 1
    assert "(it is a symbolic link, which pairbench does not follow)" in said[0]
    store.unlink()
    kept.rename(store)
    # The report's temporary file is a fresh one: a planted report.html.tmp is neither written nor followed,
    # and a report.html that is a link is replaced itself, not what it points to.
    (results / "report.html.tmp").symlink_to(victim)
    report = tmp_path / "old-report.html"
    write_report([results], report)
    (results / "report.html").symlink_to(report)
    old = report.read_bytes()
    (out,) = write_report([results], results / "report.html")
    assert not out.is_symlink() and b"pairbench report" in out.read_bytes() and report.read_bytes() == old
    assert victim.read_text() == "victim\n" and (results / "report.html.tmp").is_symlink()


# 3. a record the results file cannot take is kept beside its run, then appended


def test_a_record_that_cannot_be_appended_is_kept_beside_its_run_and_appended_by_the_next_run(tmp_path):
    results = _results(tmp_path)
    store = records_path(results)
    before = read_records(store)
    store.rename(tmp_path / "aside.jsonl")
    store.mkdir()  # the results file is a folder now (or a full disk, a read-only file...)
    said, count = [], records_written()
    records = [run_record(fw, run_id=RUN, timestamp="20261125T000000Z") for fw in ("torch", "mindspore")]
    for r in records:
        append_record(store, r, warn=said.append)
    pending = results / RUN / PENDING_FILE
    assert read_records(pending) == records and records_written() == count + 2
    assert said == [
        f"{store} cannot take the records of run {RUN} (it is a folder, not a file); they are "
        f"kept in {pending}, and the next run on {results} appends them"
    ]
    assert where_records_went(store).startswith(f"records kept in {pending} ({store} could not take them")
    with pytest.raises(PairbenchError, match=f"{store} is a folder"):  # refused before any work, nothing lost
        ready_store(results)
    assert read_records(pending) == records
    store.rmdir()
    (tmp_path / "aside.jsonl").rename(store)
    with open(pending, "ab") as fh:  # the first record appended already by a run killed before it removed
        fh.write(b'{"torn')  # the pending file, which a kill also tore
    with open(store, "ab") as fh:
        fh.write((json.dumps(records[0], sort_keys=True) + "\n").encode())
    (msg,) = ready_store(results)
    assert msg.startswith(f"1 record(s) that an earlier run kept in {pending} appended to {store}")
    assert read_records(store) == before + records and not pending.exists()  # each record once
    assert (results / "records.jsonl.torn").read_bytes() == b'{"torn\n'
    assert ready_store(results) == []


def test_a_full_disk_loses_no_record_and_leaves_no_empty_report(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes writes past it fail as a full disk does (EFBIG)."""
    results = _results(tmp_path)
    write_report([results], results / "report.html")
    store, report = records_path(results), results / "report.html"
    old_store, old_report = store.read_bytes(), report.read_bytes()
    code = f"""
import resource, signal, sys
sys.path.insert(0, "tests")
from conftest import run_record
from reports.build import write_report
from runners.records.store import append_record
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({len(old_store)}, {len(old_store)}))
said = []
append_record({str(store)!r}, run_record("torch", run_id={RUN!r}, timestamp="20261125T000000Z"), warn=said.append)
print(said[0])
try:
    write_report([{str(results)!r}], {str(report)!r})
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    kept, refused = proc.stdout.strip().splitlines()
    assert kept.startswith(f"{store} cannot take the records of run {RUN} (File too large); they are kept in")
    assert refused == f"PairbenchError cannot write the report {report}: File too large"
    assert store.read_bytes() == old_store and report.read_bytes() == old_report  # no part of either written
    assert len(read_records(results / RUN / PENDING_FILE)) == 1
    assert [p.name for p in results.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


# 4. every OSError on a user's path: one sentence with the path and the errno's meaning


def test_a_read_only_results_folder_is_one_sentence_at_the_lock(tmp_path, monkeypatch):
    results = _results(tmp_path)
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(LOCK_NAME) or str(path).endswith("records.jsonl"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(PairbenchError) as err:
        with locked(tmp_path):
            pass
    assert str(err.value) == f"cannot create the lock file {tmp_path / LOCK_NAME}: Read-only file system"
    with pytest.raises(PairbenchError) as err:
        ready_store(results)
    assert str(err.value).startswith(f"cannot write {records_path(results)}: Read-only file system, so no run")


@pytest.mark.parametrize("command", ["run", "skill", "forecast"])
def test_every_command_says_an_unusable_results_folder_in_one_sentence(tmp_path, command):
    (tmp_path / "file").write_text("")
    results = tmp_path / "file" / "R"
    proc = cli(command, "--results-dir", str(results))
    assert proc.returncode == 2 and _last_line(proc.stderr) == (
        f"pairbench: error: cannot create the results directory {results}: {os.strerror(errno.ENOTDIR)}"
    )


def test_an_os_error_anywhere_is_one_sentence_naming_the_path(tmp_path, monkeypatch, capsys):
    import reports.build
    from runners.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space", str(tmp_path / "x.png"))

    monkeypatch.setattr(reports.build, "write_report", full)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"pairbench: error: {tmp_path / 'x.png'}: No space left on device\n"


# 6. Ctrl-C: one line, exit 130


_STUB = """
import os, signal, sys, time
sys.path.insert(0, "tests")
from conftest import run_record
from pathlib import Path
import runners.experiments.{module} as experiment
from runners.records.store import append_record, records_path

def interrupted(opts, *args, **kwargs):  # one record written, then Ctrl-C
    append_record(records_path(opts.results_dir), run_record("torch", run_id="r1"))
    print("ready", flush=True)
    {interrupt}
    time.sleep(60)

experiment.{function} = interrupted
from runners.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    "command, module, function, line",
    [
        ("run", "pair", "run_pair", "interrupted: 1 records written; --resume continues"),
        ("skill", "skill", "run_skill", "interrupted: 1 records written"),
        ("forecast", "forecast", "run_forecast", "interrupted: 1 records written"),
    ],
)
@pytest.mark.parametrize("to", ["parent", "group"])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, command, module, function, line, to):
    (tmp_path / "r1").mkdir()
    argv = [command, "--seed", "1", "--results-dir", str(tmp_path)] + (["--no-skill"] if command == "run" else [])
    interrupt = "os.kill(os.getpid(), signal.SIGINT)" if to == "parent" else "pass"
    code = _STUB.format(module=module, function=function, argv=argv, interrupt=interrupt)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == "ready\n"
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == line, err
    assert len(read_records(records_path(tmp_path))) == 1


@needs_torch
def test_ctrl_c_in_a_real_run_stops_its_worker(tmp_path):
    args = ["run", "--frameworks", "torch", "--seed", "1", "--train-steps", "2", "--no-skill"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runners.cli", *args, "--results-dir", str(tmp_path)], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*/torch.request.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        (request,) = tmp_path.glob("*/torch.request.json")  # the worker is starting
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert (
        proc.returncode == 130
        and err.strip().splitlines()[-1] == ("interrupted: 0 records written; --resume continues")
        and "Traceback" not in err
    ), err
    time.sleep(0.5)
    alive = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                alive += [p.name] if str(request) in (p / "cmdline").read_bytes().decode(errors="replace") else []
            except OSError:
                pass
    assert not alive, f"worker still running: {alive}"


# 13. Markdown: link syntax escaped


_SPECIAL = set("[]`<>|*")


def _unescaped(line: str) -> set[str]:
    """The Markdown syntax characters of ``line`` that no backslash escapes."""
    found, i = set(), 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] in _SPECIAL:
            found.add(line[i])
        i += 1
    return found


def test_markdown_escapes_link_syntax_in_every_cell_and_heading(tmp_path):
    evil = "[x](javascript:alert(1)) ![i](http://e/x.png) <javascript:alert(1)> `code` \\[y](javascript:z)"
    path = tmp_path / "records.jsonl"
    append_record(path, run_record("torch", workload=evil, host=evil, model={"name": evil}))
    append_record(path, run_record("mindspore", steps=[20.0] * 20, workload=evil, host=evil))
    skipped = tmp_path / "[s](javascript:alert(1)).jsonl"
    skipped.write_text(path.read_text() + "[1]\n")
    (md,) = write_report([skipped], tmp_path / "r.md", "md", skip_invalid=True)
    text = md.read_text()
    data = [ln for ln in text.splitlines() if ln.startswith(("|", "### ", "- "))]
    assert "\\[x\\](javascript:alert(1))" in text and "/\\[s\\](javascript:alert(1)).jsonl line 3" in text
    for ln in data:
        assert not _unescaped(ln) - {"|"}, ln
    assert "](" not in text.replace("\\](", "") and "<javascript" not in text and "\\`code\\`" in text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]()`<>|*\\!&x: \n")), max_size=30))
def test_markdown_text_escapes_every_link_character(text):
    from reports.build import _md

    out = _md(text)
    assert not _unescaped(out) - {"<", ">"} and "<" not in out and ">" not in out and "\n" not in out
    # nothing is lost: undoing the escapes gives the text back (line breaks as spaces)
    back, i = [], 0
    while i < len(out):
        back.append(out[i + 1] if out[i] == "\\" else out[i])
        i += 2 if out[i] == "\\" else 1
    undone = "".join(back).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert undone == text.replace("\n", " ")


def test_write_file_writes_whole_and_replaces_a_link_itself(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    link = tmp_path / "l.txt"
    link.symlink_to(target)
    write_file(link, "new")
    assert target.read_text() == "old" and link.read_text() == "new" and not link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.txt", "t.txt"]


def test_a_csv_report_replaces_only_the_tables_an_earlier_csv_report_wrote(tmp_path):
    results = _results(tmp_path)
    folder = tmp_path / "CS"
    first = write_report([results], folder, "csv")
    again = write_report([results], folder, "csv")  # its own tables it replaces
    assert {p.name for p in first} == {p.name for p in again}
    users = tmp_path / "U"
    users.mkdir()
    (users / "runs.csv").write_text("precious\n")
    with pytest.raises(PairbenchError, match="runs.csv exists and is not a table of an earlier pairbench report"):
        write_report([results], users, "csv")
    assert (users / "runs.csv").read_text() == "precious\n" and sorted(p.name for p in users.iterdir()) == ["runs.csv"]
    victim = tmp_path / "victim"
    victim.write_text("v")
    (users / "runs.csv").unlink()
    (users / "ratios.csv").symlink_to(victim)
    with pytest.raises(PairbenchError, match="ratios.csv is not a regular file"):
        write_report([results], users, "csv")
    assert victim.read_text() == "v" and not (users / "runs.csv").exists()


def test_weights_that_cannot_be_written_are_one_sentence_and_leave_no_partial_file(tmp_path):
    from runners.weights.canonical import save_weights
    from runners.workloads.fourcastnet.config import CONFIGS

    cfg = CONFIGS["fourcastnet-tiny"]
    path = tmp_path / "w.safetensors"
    (tmp_path / "w.safetensors.tmp").symlink_to("/dev/full")  # every write there fails as a full disk does
    with pytest.raises(PairbenchError, match="cannot write the weights file .*w.safetensors: No space left on device"):
        save_weights(path, cfg, cfg.init_weights(0))
    assert not path.exists() and not os.path.lexists(tmp_path / "w.safetensors.tmp")


def test_ctrl_c_while_the_command_line_loads_is_one_line(tmp_path):
    code = """
import builtins, sys
real = builtins.__import__
def slow(name, *args, **kwargs):
    if name == "runners.cli":
        raise KeyboardInterrupt  # as a Ctrl-C lands while the workloads' registry is built
    return real(name, *args, **kwargs)
builtins.__import__ = slow
from runners.entry import main
sys.exit(main(["devices"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "interrupted: 0 records written"


def test_a_refused_run_leaves_neither_its_empty_run_folder_nor_the_lock(tmp_path):
    results = tmp_path / "R"
    with pytest.raises(PairbenchError, match="no space"):
        with locked(results):
            (results / "20261206T000000Z-fourcastnet-tiny-1").mkdir()  # made, then its weights could not be written
            raise PairbenchError("no space")
    assert not results.exists()
    kept = tmp_path / "K"
    (kept / "mine").mkdir(parents=True)  # a folder that was there before is the user's: kept, even empty
    with locked(kept):
        (kept / "new").mkdir()
    assert sorted(p.name for p in kept.iterdir()) == [LOCK_NAME, "mine"]  # the new empty folder is gone
