"""Reports: pairing (match, mismatch, unpaired), ratio and interval arithmetic on hand-made records,
escaping, damaged results files, and the three output formats."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import run_record

from reports.build import write_report
from reports.pairing import pair_records
from reports.stats import bootstrap_interval, bootstrap_ratio, factor_split
from reports.tables import ratios_table, runs_table
from runners.errors import PairbenchError
from runners.records.store import append_record, read_records, read_records_lenient

rng = np.random.default_rng(0)


def run(framework, device="cpu", step=10.0, spread=0.0, **extra):
    steps = list(step + spread * rng.standard_normal(20)) if spread else [step] * 20
    return run_record(framework, device, steps, **extra)


def test_matching_fingerprints_pair_and_give_ratios():
    p = pair_records([run("torch", step=10.0), run("mindspore", step=20.0)])
    assert len(p.groups) == 1 and p.groups[0].paired and not p.refusals
    table = ratios_table(p)
    step = table[table.metric == "train step time"].iloc[0]
    assert step.comparison == "MindSpore / PyTorch on cpu"
    assert step.ratio == pytest.approx(2.0) and step.ci_low == pytest.approx(2.0) and step.ci_high == pytest.approx(2.0)
    assert not step.within_noise
    energy = table[table.metric == "energy per sample"].iloc[0]
    assert energy.ratio == pytest.approx(1.0) and "estimated" in energy.basis


def test_mismatched_weights_are_refused_naming_the_difference():
    other = run("mindspore", weights_sha256="b" * 64)
    p = pair_records([run("torch"), other])
    assert len(p.groups) == 2 and not any(g.paired for g in p.groups)
    assert len(p.refusals) == 1
    assert (
        "not compared: they differ in weights_sha256 (aaaaaaaaaaaa...aaaaaa vs bbbbbbbbbbbb...bbbbbb)" in p.refusals[0]
    )
    assert ratios_table(p).empty


def test_unpaired_run_is_shown_without_ratios():
    p = pair_records([run("torch"), run("mindspore", status="failed", reason="killed by signal 9")])
    assert not p.groups[0].paired and ratios_table(p).empty
    assert list(runs_table(p).framework) == ["torch"]
    assert p.groups[0].failed[0]["reason"] == "killed by signal 9"


def test_latest_run_of_a_framework_and_device_wins():
    older = run("torch", step=50.0, timestamp="20261101T000000Z")
    p = pair_records([run("torch", step=10.0), older])
    assert p.groups[0].runs["torch", "cpu"]["step_ms_p50"] == 10.0


def test_noisy_overlapping_samples_are_within_noise():
    a = 10 + rng.standard_normal(15)
    b = 10.1 + rng.standard_normal(15)
    r = bootstrap_ratio(a, b)
    assert r.low < 1 < r.high and r.within_noise and "(within noise)" in r.label()
    assert bootstrap_ratio(a, b) == r  # deterministic for a seed
    lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 <= lo <= 3.0 <= hi <= 5.0
    with pytest.raises(ValueError, match="at least 2 samples"):
        bootstrap_ratio([1.0], [1.0, 2.0])


def test_factor_split_hand_worked():
    t = {("torch", "cuda"): 1.0, ("mindspore", "cuda"): 2.0, ("torch", "ascend"): 3.0, ("mindspore", "ascend"): 4.0}
    s = factor_split(t)
    assert s["gap"] == 4.0
    assert s["framework_factor"] == pytest.approx(np.sqrt(2 / 1 * 4 / 3))
    assert s["hardware_factor"] == pytest.approx(np.sqrt(3 / 1 * 4 / 2))
    assert s["framework_factor"] * s["hardware_factor"] == pytest.approx(s["gap"])
    with pytest.raises(ValueError, match="missing"):
        factor_split({("torch", "cuda"): 1.0})


def test_ratios_across_devices_and_the_split_appear_when_all_four_ran():
    recs = [
        run("torch", "cuda:0", 1.0),
        run("mindspore", "cuda:0", 2.0),
        run("torch", "ascend:0", 3.0),
        run("mindspore", "ascend:0", 4.0),
    ]
    table = ratios_table(pair_records(recs))
    npu_gpu = table[
        (table.comparison == "NPU / GPU, PyTorch (ascend:0 / cuda:0)") & (table.metric == "train step time")
    ]
    assert npu_gpu.ratio.iloc[0] == pytest.approx(3.0)
    split = table[table.comparison == "MindSpore on NPU / PyTorch on GPU"].set_index("metric").ratio
    assert split["train step time: gap"] == pytest.approx(4.0)
    assert split["train step time: framework factor"] == pytest.approx(np.sqrt(8 / 3))


def test_html_is_self_contained_and_escapes_every_text(tmp_path):
    evil = "<script>alert('x')</script>"
    recs = [run("torch", workload=evil, host="<b>host</b>"), run("mindspore", step=12.0, workload=evil)]
    path = tmp_path / "records.jsonl"
    for r in recs:
        append_record(path, r)
    (out,) = write_report([path], tmp_path / "r.html")
    html = out.read_text()
    assert "<script>" not in html and "<b>host</b>" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;b&gt;host&lt;/b&gt;" in html
    assert html.count("data:image/png;base64,") >= 4  # throughput, latency, memory, power
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing fetched from anywhere


def test_markdown_and_csv(tmp_path):
    path = tmp_path / "records.jsonl"
    for r in (run("torch"), run("mindspore", step=20.0)):
        append_record(path, r)
    (md,) = write_report([tmp_path], tmp_path / "r.md", "md")
    text = md.read_text()
    assert "## Ratios" in text and "| MindSpore / PyTorch on cpu |" in text and not re.search(r"\bnan\b", text)
    written = write_report([path], tmp_path / "csv", "csv")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == [
        "csv/how-quiet-the-machine-was.csv", "csv/ratios.csv", "csv/runs.csv", "csv/summary.csv",
        "csv/what-each-watt-covers.csv",
    ]  # fmt: skip
    assert "train step time" in (tmp_path / "csv" / "ratios.csv").read_text()
    assert "step_ms_p50" in (tmp_path / "csv" / "runs.csv").read_text()  # CSV keeps the records' field names
    with pytest.raises(PairbenchError, match="-o names the folder to write them into, not .*r.csv"):
        write_report([path], tmp_path / "r.csv", "csv")


def test_markdown_and_csv_neutralise_what_records_carry(tmp_path):
    evil = "<script>alert(1)</script>|x\ny"
    path = tmp_path / "records.jsonl"
    append_record(path, run("torch", workload=evil, host="=HYPERLINK(1)"))
    append_record(path, run("mindspore", step=20.0, workload=evil, host="@SUM(A1)"))
    text = write_report([path], tmp_path / "r.md", "md")[0].read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x y" in text
    runs = text.split("## Runs")[1].split("\n## ")[0]
    tables = [t for t in runs.split("\n\n") if t.startswith("|")]
    assert len(tables) == 3  # the runs table in its three column groups
    for table in tables:
        rows = table.splitlines()
        columns = {len(re.findall(r"(?<!\\)\|", ln)) for ln in rows}
        assert len(rows) == 4 and len(columns) == 1  # header, rule, two runs: the name breaks no table
    runs_csv = next(p for p in write_report([path], tmp_path / "csv", "csv") if p.name == "runs.csv").read_text()
    assert "'=HYPERLINK(1)" in runs_csv and "'@SUM(A1)" in runs_csv
    assert ",=HYPERLINK" not in runs_csv and ",@SUM" not in runs_csv


def test_damaged_results_file_names_the_line_and_keeps_the_valid_records(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, run("torch"))
    with open(path, "a") as fh:
        fh.write('{"workload": "fourcastnet-tiny", "step_ms": [1, 2')  # a run killed mid-write
        fh.write("\n")
    append_record(path, run("mindspore", step=20.0))
    before = path.read_bytes()
    with pytest.raises(PairbenchError, match=r"records.jsonl line 2 is not valid JSON .*--skip-invalid"):
        write_report([path], tmp_path / "r.html")
    records, skipped = read_records_lenient(path)
    assert [r["framework"] for r in records] == ["torch", "mindspore"]
    assert skipped == [f"{path} line 2 is not valid JSON (Expecting ',' delimiter)"]
    (out,) = write_report([path], tmp_path / "r.html", skip_invalid=True)
    assert "line 2 is not valid JSON" in out.read_text()
    assert path.read_bytes() == before
    with pytest.raises(PairbenchError, match="does not exist"):
        read_records(tmp_path / "none.jsonl")


def test_report_command_errors_are_one_sentence(tmp_path):
    from conftest import run_python

    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    proc = run_python(
        f"import sys; from runners.cli import main; sys.exit(main(['report', '{tmp_path / 'bad.jsonl'}']))"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith(
        "line 1 is not a JSON object; pass --skip-invalid to report the valid records anyway"
    )
    append_record(tmp_path / "mixed.jsonl", run("torch"))
    with open(tmp_path / "mixed.jsonl", "a") as fh:
        fh.write("[1, 2]\n")
    out = tmp_path / "r.md"
    proc = run_python(
        "import sys; from runners.cli import main; "
        f"sys.exit(main(['report', '{tmp_path / 'mixed.jsonl'}', '--skip-invalid', '--format', 'md', '-o', '{out}']))"
    )
    assert proc.returncode == 0, proc.stderr  # what it could not show is said, on the console and in the report
    assert proc.stderr.strip() == f"not shown: {tmp_path / 'mixed.jsonl'} line 2 is not a JSON object"
    assert "skipped: " in out.read_text() and "line 2 is not a JSON object" in out.read_text()


def test_report_opens_in_headless_chromium_with_every_figure(tmp_path):
    from reports.browser_check import BrowserUnavailable, check_html

    path = tmp_path / "records.jsonl"
    for r in (run("torch", spread=1.0), run("mindspore", step=20.0, spread=2.0)):
        append_record(path, r)
    (out,) = write_report([path], tmp_path / "r.html")
    try:
        result = check_html(out, screenshot=tmp_path / "r.png")
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    assert result.console_errors == [] and result.failed_requests == [] and result.broken_images == []
    assert result.images == out.read_text().count("data:image/png;base64,") >= 4
    assert result.ok and (tmp_path / "r.png").stat().st_size > 10_000
