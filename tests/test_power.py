"""Power collectors: integration worked by hand, the sampler, RAPL on a fake sysfs tree, NVML through a
stand-in pynvml module, the CPU estimate, and that nothing unreadable ever shows as 0."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from metrics.device.rapl import counter_delta_uj, rapl_domains
from metrics.device.reading import (
    CARD,
    CHIP,
    CPU_PACKAGE,
    ESTIMATED,
    MEASURED,
    MODEL_ESTIMATE,
    NO_SCOPE,
    UNAVAILABLE,
    PowerUnavailable,
    Scope,
)
from metrics.power.collectors import collector_for, cpu_collector
from metrics.power.cpu import RaplCollector
from metrics.power.window import MIN_RATE_HZ, MIN_SAMPLES, PowerResult, SampledCollector, integrate, sampling_shortfall

SENSOR = Scope(CARD, "a test sensor")


def test_integrate_hand_worked():
    # 100 W held from 0 to 1 s... trapezoid 100->200 W from 1 to 2 s (150 J) ... 200 W held to 3 s.
    assert integrate([(1.0, 100.0), (2.0, 200.0)], 0.0, 3.0) == pytest.approx(100 + 150 + 200)
    assert integrate([(0.5, 10.0)], 0.0, 2.0) == pytest.approx(20.0)
    # MLPerf-style 1 Hz samples of the watch fixture's two rows (280.8 W, 280.9 W) over 1 s.
    assert integrate([(0.0, 280.8), (1.0, 280.9)], 0.0, 1.0) == pytest.approx(280.85)
    with pytest.raises(ValueError, match="no power samples"):
        integrate([], 0.0, 1.0)


def test_constant_power_integrates_to_power_times_window():
    c = SampledCollector(lambda: 50.0, "test", MEASURED, rate_hz=50, scope=SENSOR)
    c.start()
    time.sleep(0.3)
    r = c.stop()
    assert r.provenance == MEASURED and len(r.samples) >= 5
    assert r.energy_j == pytest.approx(50.0 * r.window_s, rel=1e-9)
    assert r.power_w_mean == pytest.approx(50.0) and r.power_w_peak == 50.0


def test_linear_ramp_matches_the_analytic_integral():
    t_start = time.monotonic()
    c = SampledCollector(lambda: 100.0 * (time.monotonic() - t_start), "ramp", MEASURED, rate_hz=100, scope=SENSOR)
    c.start()
    time.sleep(0.4)
    r = c.stop()
    t0, t1 = c.t0 - t_start, c.t0 - t_start + r.window_s
    assert r.energy_j == pytest.approx(50.0 * (t1**2 - t0**2), rel=0.03)


def test_no_reading_is_unavailable_with_a_reason_never_zero():
    c = SampledCollector(lambda: None, "na-sensor", MEASURED, rate_hz=50, scope=SENSOR)
    c.start()
    time.sleep(0.05)
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.energy_j is None and r.power_w_mean is None
    assert "0 power reading(s)" in r.reason and "without a value" in r.reason
    rec = r.to_record(samples_in_window=10)
    assert rec["energy_j"] is None and rec["energy_j_per_sample"] is None and rec["samples_per_j"] is None

    def broken():
        raise PowerUnavailable("npu-smi is not on PATH")

    c = SampledCollector(broken, "npu", MEASURED, rate_hz=50, scope=SENSOR)
    c.start()
    r = c.stop()
    assert r.reason == "npu-smi is not on PATH"


def test_unavailable_result_must_say_why():
    with pytest.raises(ValueError, match="must say why"):
        PowerResult(source="x", provenance=UNAVAILABLE, window_s=1.0)
    with pytest.raises(ValueError, match="unknown provenance"):
        PowerResult(source="x", provenance="guessed", window_s=1.0)


def test_energy_per_sample_and_samples_per_joule():
    r = PowerResult(source="x", provenance=MEASURED, window_s=2.0, energy_j=8.0, power_w_mean=4.0, scope=SENSOR)
    rec = r.to_record(samples_in_window=4)
    assert rec["energy_j_per_sample"] == 2.0 and rec["samples_per_j"] == 0.5


def test_every_reading_names_its_scope_and_only_an_unavailable_one_none():
    with pytest.raises(ValueError, match="a power result that is measured cannot have the scope 'none'"):
        PowerResult(source="x", provenance=MEASURED, window_s=1.0, energy_j=1.0)
    with pytest.raises(ValueError, match="a power result that is unavailable cannot have the scope 'card'"):
        PowerResult(source="x", provenance=UNAVAILABLE, window_s=1.0, reason="gone", scope=SENSOR)
    with pytest.raises(ValueError, match="unknown power scope 'board'"):
        Scope("board", "the board")
    rec = PowerResult(source="x", provenance=UNAVAILABLE, window_s=1.0, reason="gone").to_record()
    assert (rec["power_scope"], rec["power_scope_label"]) == (NO_SCOPE, "nothing was read")
    assert rec["power_window_ok"] is None and rec["power_rate_hz_achieved"] is None  # nothing to qualify


def test_the_record_schema_takes_the_scope_vocabulary_only():
    from conftest import run_record

    from runners.records.schema import RecordError

    assert run_record("torch", power_scope=CHIP)["power_scope"] == CHIP
    with pytest.raises(RecordError, match="field 'power_scope' is 'board', not one of chip, card, cpu-package"):
        run_record("torch", power_scope="board")


# --- the sampling a window needs (MLPerf Power: 1 Hz or more, at least 60 samples) -------------------------


def test_a_window_short_of_mlperfs_sampling_is_flagged_with_what_fell_short():
    one_hz = [(float(t), 100.0) for t in range(60)]  # 0 .. 59 s in a 60 s window: no gap over 1 s
    assert (MIN_SAMPLES, MIN_RATE_HZ) == (60, 1.0) and sampling_shortfall(one_hz, 60.0) is None
    assert sampling_shortfall(one_hz[:59], 59.0).startswith("59 samples, fewer than 60 in the 59 s window: MLPerf")
    slow = [(2.0 * t, 100.0) for t in range(60)]  # 60 samples over 120 s
    why = sampling_shortfall(slow, 120.0)
    assert "0.5 Hz, under 1 Hz" in why and "a 2 s gap without a sample" in why and "fewer than" not in why
    stalled = [(0.5 * i, 100.0) for i in range(100) if not 40 <= i <= 45]  # 94 samples at 2 Hz, but 19.5 .. 23 s
    assert sampling_shortfall(stalled, 50.0).startswith("a 3.5 s gap without a sample, over 1 s in the 50 s window")
    late = [(5.0 + t, 100.0) for t in range(60)]  # nothing in the window's first 5 s
    assert "a 5 s gap" in sampling_shortfall(late, 65.0)


def test_a_short_window_keeps_its_energy_beside_the_flag_and_a_full_one_passes():
    slow = [(2.0 * t, 100.0) for t in range(60)]
    r = PowerResult(source="x", provenance=MEASURED, window_s=120.0, energy_j=12000.0, samples=slow, scope=SENSOR)
    rec = r.to_record(samples_in_window=10)
    assert rec["power_window_ok"] is False and "under 1 Hz" in rec["power_window_reason"]
    assert rec["energy_j"] == 12000.0 and rec["energy_j_per_sample"] == 1200.0  # flagged, never dropped
    assert rec["power_rate_hz_achieved"] == pytest.approx(0.5) and len(rec["power_samples"]) == 60
    fine = [(0.5 * i, 100.0) for i in range(121)]
    rec = PowerResult(source="x", provenance=MEASURED, window_s=60.0, energy_j=6000.0, samples=fine, scope=SENSOR)
    rec = rec.to_record(samples_in_window=10)
    assert rec["power_window_ok"] is True and rec["power_window_reason"] is None
    assert rec["power_rate_hz_achieved"] == pytest.approx(121 / 60)


def test_a_sampled_collectors_record_states_its_rates_and_passes_the_schema():
    from conftest import run_record

    c = SampledCollector(lambda: 50.0, "test", MEASURED, rate_hz=50, scope=SENSOR)
    c.start()
    time.sleep(0.2)
    rec = c.stop().to_record(samples_in_window=4)
    n = len(rec["power_samples"])
    assert rec["power_rate_hz"] == 50 and rec["power_rate_hz_achieved"] == n / rec["power_window_s"]
    assert rec["power_window_ok"] is False and rec["power_window_reason"].startswith(f"{n} samples, fewer than 60")
    assert (rec["power_scope"], rec["power_scope_label"]) == (CARD, "a test sensor")
    assert run_record("torch", **rec)["power_window_ok"] is False  # the record schema takes what collectors write


# --- RAPL on a fake powercap tree -------------------------------------------------------------------


def _rapl_tree(root: Path, packages: dict[int, int], max_uj: int = 262_143_328_850) -> Path:
    for n, value in packages.items():
        d = root / f"intel-rapl:{n}"
        d.mkdir(parents=True)
        (d / "name").write_text(f"package-{n}\n")
        (d / "energy_uj").write_text(f"{value}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
        sub = root / f"intel-rapl:{n}:0"  # a sub-zone: must not be counted twice
        sub.mkdir()
        (sub / "energy_uj").write_text("999999999\n")
        (sub / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_counter_wrap_around():
    assert counter_delta_uj(100, 350, 1000) == 250
    assert counter_delta_uj(990, 5, 1000) == 15


def test_rapl_energy_over_a_window_with_wrap_around(tmp_path):
    max_uj = 10_000_000
    root = _rapl_tree(tmp_path, {0: max_uj - 1_000_000, 1: 5_000_000}, max_uj)
    domains = rapl_domains(root)
    assert [d.name for d in domains] == ["package-0", "package-1"]
    c = RaplCollector(domains, rate_hz=0.5)
    c.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("2000000\n")  # wrapped: +3 J
    (root / "intel-rapl:1" / "energy_uj").write_text("6500000\n")  # +1.5 J
    r = c.stop()
    assert r.provenance == MEASURED and r.source == "rapl"
    assert r.energy_j == pytest.approx(4.5)
    assert r.extra["power_rapl_domains"] == ["package-0", "package-1"]


def test_a_rapl_read_error_is_an_unavailable_reading(tmp_path, monkeypatch):
    root = _rapl_tree(tmp_path, {0: 42})
    c = RaplCollector(rapl_domains(root), rate_hz=0.5)
    c.start()
    (root / "intel-rapl:0" / "energy_uj").unlink()  # the counter vanishes mid-run
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.reason.startswith("reading RAPL failed") and r.energy_j is None


def test_rapl_counter_that_does_not_move_is_unavailable(tmp_path):
    c = RaplCollector(rapl_domains(_rapl_tree(tmp_path, {0: 42})), rate_hz=0.5)
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and "did not advance" in r.reason and r.energy_j is None


def test_rapl_permission_denied_and_absence_are_reasons(tmp_path, monkeypatch):
    with pytest.raises(PowerUnavailable, match="does not exist on this machine"):
        rapl_domains(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PowerUnavailable, match="no RAPL package domains"):
        rapl_domains(tmp_path / "empty")
    root = _rapl_tree(tmp_path / "locked", {0: 1})
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(PowerUnavailable, match="permission denied; root-only since CVE-2020-8694"):
        rapl_domains(root)


def test_cpu_falls_back_to_a_labelled_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("PAIRBENCH_CPU_TDP_W", "64")
    c = cpu_collector(rate_hz=20, powercap=tmp_path / "no-powercap")
    c.start()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # keep one core busy
        sum(i * i for i in range(1000))
    r = c.stop()
    assert r.provenance == ESTIMATED and r.source.startswith("estimate")
    assert "TDP 64 W from PAIRBENCH_CPU_TDP_W" in r.extra["power_estimate_basis"]
    assert "does not exist on this machine" in r.extra["power_estimate_basis"]
    assert 0 < r.power_w_mean <= 64


def test_cpu_uses_rapl_when_readable(tmp_path):
    root = _rapl_tree(tmp_path, {0: 0})
    c = cpu_collector(rate_hz=1, powercap=root)
    assert isinstance(c, RaplCollector)
    c.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("2500000\n")  # +2.5 J
    r = c.stop()
    assert r.provenance == MEASURED and r.energy_j == pytest.approx(2.5) and "power_estimate_basis" not in r.extra
    rec = r.to_record(samples_in_window=5)
    assert rec["energy_j_per_sample"] == pytest.approx(0.5) and rec["power_provenance"] == MEASURED


# --- NVML through a stand-in pynvml ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _pci_bus_order(monkeypatch):
    """What every pairbench worker runs under (runners.experiments.runs.worker_env); tests of another order
    set their own."""
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


class _FakeNVMLError(Exception):
    pass


def _fake_pynvml(energy_mj, power_mw=250_000, counter=True, instant=True, init_error=None):
    """A module with the pynvml calls the collector uses; energy_mj() gives the counter."""
    m = types.ModuleType("pynvml")
    m.NVMLError = _FakeNVMLError
    m.NVML_FI_DEV_POWER_INSTANT = 186
    m.opened = []

    def init():
        if init_error:
            raise _FakeNVMLError(init_error)

    m.nvmlInit = init
    m.nvmlDeviceGetHandleByIndex = lambda i: m.opened.append(("index", i)) or ("h", i)
    m.nvmlDeviceGetHandleByUUID = lambda u: m.opened.append(("uuid", u)) or ("h", u)

    def total_energy(h):
        if not counter:
            raise _FakeNVMLError("Not Supported")
        return energy_mj()

    m.nvmlDeviceGetTotalEnergyConsumption = total_energy

    def fields(h, ids):
        value = types.SimpleNamespace(nvmlReturn=0 if instant else 3, value=types.SimpleNamespace(uiVal=power_mw))
        return [value]

    m.nvmlDeviceGetFieldValues = fields
    m.nvmlDeviceGetPowerUsage = lambda h: power_mw
    return m


def _nvml_window(monkeypatch, fake, seconds: float = 0.3):
    """What the NVML collector of CUDA GPU 0 reports over a window of ``seconds``, through ``fake`` pynvml."""
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    c = collector_for("cuda", 0, rate_hz=50)
    c.start()
    time.sleep(seconds)
    return c.stop()


def test_nvml_counter_and_sampled_energy_side_by_side(monkeypatch):
    clock = {"t0": time.monotonic()}
    # Counter advancing at 250 W: mJ = 250 * elapsed * 1000.
    r = _nvml_window(monkeypatch, _fake_pynvml(lambda: int(250_000 * (time.monotonic() - clock["t0"]))))
    assert r.provenance == MEASURED and r.source == "nvml-energy-counter"
    assert r.energy_j == pytest.approx(250 * r.window_s, rel=0.02)
    assert r.extra["energy_j_sampled"] == pytest.approx(250 * r.window_s, rel=1e-6)
    assert r.extra["power_sensor"] == "instant" and r.extra["energy_counter_reason"] is None


def test_nvml_short_window_is_flagged_not_zero(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: 1_000_000, instant=False))
    c = collector_for("cuda", 0, rate_hz=50)
    c.start()
    time.sleep(0.1)
    r = c.stop()
    assert r.extra["energy_j_counter"] is None
    assert "did not advance" in r.extra["energy_counter_reason"]
    assert r.source == "nvml-power-average" and r.energy_j > 0  # sampled power carries the result


def test_nvml_without_counter_or_samples_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: 0, counter=False))
    c = collector_for("cuda", 0, rate_hz=0.1)
    c.sampled.min_samples = 99  # as if the window were too short for the sampler as well
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.energy_j is None
    assert "no total-energy counter" in r.reason and "at least 99 are needed" in r.reason


@pytest.mark.parametrize(
    "visible, expected",
    [("2,0", ("index", 2)), ("GPU-8d2c-aa", ("uuid", "GPU-8d2c-aa")), (None, ("index", 0))],
)
def test_nvml_respects_cuda_visible_devices(monkeypatch, visible, expected):
    fake = _fake_pynvml(lambda: 0)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    collector_for("cuda", 0)
    assert fake.opened[0] == expected


def test_nvml_absent_or_mig_gives_an_unavailable_collector(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: 0, init_error="NVML Shared Library Not Found"))
    c = collector_for("cuda", 0)
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and "NVML cannot be initialised" in r.reason
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: 0))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1234")
    c = collector_for("cuda", 0)
    c.start()
    assert "MIG slices have no power sensor" in c.stop().reason


# --- Ascend through the stand-in npu-smi ---------------------------------------------------------------

STANDIN = Path(__file__).resolve().parent / "fixtures" / "bin"


@pytest.fixture
def standin(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{STANDIN}{__import__('os').pathsep}{__import__('os').environ['PATH']}")
    monkeypatch.setenv("NPU_SMI_STANDIN_STATE", str(tmp_path / "npu-smi.state"))
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    return monkeypatch


def test_npu_smi_constant_power_integrates_exactly(standin):
    standin.setenv("NPU_SMI_STANDIN_POWER", "296.5")
    c = collector_for("ascend", 0, rate_hz=20)
    c.start()
    time.sleep(0.4)
    r = c.stop()
    assert r.provenance == MEASURED and r.source == "npu-smi-sampled" and len(r.samples) >= 2
    assert r.energy_j == pytest.approx(296.5 * r.window_s, rel=1e-9)
    assert r.extra["power_npu_id"] == 0


def test_replayed_watch_rows_integrate_to_hand_worked_joules(standin):
    from metrics.device.npu_smi.runner import NpuSmi

    standin.setenv("NPU_SMI_STANDIN_POWER", "100,200,300,400")
    rows = NpuSmi().watch(0, delay_s=0.05, count=4)
    assert [r.power_w for r in rows] == [100.0, 200.0, 300.0, 400.0]
    # Rows one nominal second apart: trapezoids (100+200)/2 + (200+300)/2 + (300+400)/2 = 750 J over 3 s.
    samples = [(float(i), r.power_w) for i, r in enumerate(rows)]
    assert integrate(samples, 0.0, 3.0) == pytest.approx(750.0)


def test_npu_na_and_rated_power_are_never_measurements(standin):
    from metrics.device.ascend import TABLE_SOURCE
    from metrics.device.npu_smi.info import parse_info
    from metrics.device.npu_smi.key_values import PowerReading
    from metrics.power.ascend import NpuSmiCollector

    standin.setenv("NPU_SMI_STANDIN_NA", "1")  # -t power reads NA: the info table's live Power(W) is used
    c = collector_for("ascend", 0, rate_hz=20)
    c.start()
    time.sleep(0.3)
    r = c.stop()
    assert r.provenance == MEASURED and r.power_w_mean == pytest.approx(70.5)
    assert r.extra["power_npu_source"] == TABLE_SOURCE

    class RatedOnly:  # -t power offers a rating, and the info table's Power(W) reads NA
        def power(self, npu_id, chip_id=None):
            return PowerReading(npu_id, 0, 8.0, "rated", "Rated Power Dissipation(W)", "chip")

        def info(self):
            return parse_info(_fixture("edge_info_310p_na_processes.txt"))

    c = NpuSmiCollector(0, smi=RatedOnly(), rate_hz=20)  # logical 0 is NPU 8, whose Power(W) is NA: no reading
    c.start()
    time.sleep(0.1)
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.energy_j is None and "without a value" in r.reason

    class RatedAndGone(RatedOnly):
        calls = 0

        def info(self):
            self.calls += 1
            return parse_info(_fixture("edge_info_310p_na_processes.txt")) if self.calls == 1 else []

    with pytest.raises(PowerUnavailable, match="only a rated power .*no longer lists NPU 8: no live reading"):
        NpuSmiCollector(0, smi=RatedAndGone())


def _fixture(name: str) -> str:
    return (Path(__file__).resolve().parent / "fixtures" / "npu-smi" / name).read_text()


def test_a_rating_gives_way_to_the_info_tables_live_power_and_logical_ids_find_the_chip(standin):
    """A 310 card (four chips on NPU 6, logical devices 4-7) whose -t power offers only a rating: power comes
    from the info table's Power(W) of the NPU, labelled with that source; an implausible row ("-5" W on NPU 7)
    is no reading for that NPU only."""
    from metrics.device.ascend import TABLE_SOURCE, list_npus

    standin.setenv("NPU_SMI_STANDIN_INFO", "edge_info_310_four_chips.txt")
    standin.setenv("NPU_SMI_STANDIN_RATED", "1")
    c = collector_for("ascend", 6, rate_hz=20)  # logical device 6: NPU 6, chip 2
    assert (c.npu_id, c.chip_id, c.power_source) == (6, 2, TABLE_SOURCE)
    c.start()
    time.sleep(0.3)
    r = c.stop()
    assert r.provenance == MEASURED and r.power_w_mean == pytest.approx(27.9) and r.extra["power_npu_chip"] == 2
    assert r.extra["power_npu_source"] == TABLE_SOURCE
    npus = list_npus()
    assert [(d["npu_id"], d["chip_id"], d["logical_id"]) for d in npus] == [
        (6, 0, 4), (6, 1, 5), (6, 2, 6), (6, 3, 7), (7, 0, 8)
    ]  # fmt: skip
    assert [d["power_w"] for d in npus] == [27.9] * 4 + [None]
    assert all(d["power_source"] == TABLE_SOURCE for d in npus[:4]) and npus[0]["memory_gb"] == 8.0
    assert "found '-5'" in npus[4]["power_reason"] and npus[4]["row_problems"]
    with pytest.raises(PowerUnavailable, match="npu-smi lists no logical device 0 \\(it lists 4, 5, 6, 7, 8\\)"):
        collector_for_strict(0)


def test_each_collector_names_what_its_watts_cover(standin, tmp_path):
    """NVML: the board; RAPL: the packages; the CPU estimate: a model; npu-smi: the chip where the reading is the
    chip's own or its NPU has one chip, card-wide where several chips share one reading (a 310 card)."""
    from metrics.device.ascend import list_npus

    def window(c):
        c.start()
        return c.stop()

    standin.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: int(time.monotonic() * 250_000)))
    standin.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    r = window(collector_for("cuda", 0, rate_hz=50))
    assert r.scope == Scope(CARD, "the whole board: the GPU with its memory and circuitry (NVML)")
    root = _rapl_tree(tmp_path / "rapl", {0: 0, 1: 0})
    c = cpu_collector(rate_hz=1, powercap=root)
    c.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("2500000\n")
    r = c.stop()
    assert r.scope.kind == CPU_PACKAGE and r.scope.label.startswith("CPU package(s) package-0, package-1 (RAPL)")
    standin.setenv("PAIRBENCH_CPU_TDP_W", "64")
    scope = cpu_collector(rate_hz=20, powercap=tmp_path / "none").scope  # what its estimates will be labelled
    assert scope.kind == MODEL_ESTIMATE and "TDP x CPU utilisation of the process" in scope.label
    # Atlas 800: one chip per NPU, -t power gives the NPU's value: the chip's.
    assert window(collector_for("ascend", 1, rate_hz=20)).scope == Scope(CHIP, "NPU 1, whose one chip this is")
    # A 310 card: four chips on NPU 6 and one Power(W) for them all, charged to each chip's run as card-wide.
    standin.setenv("NPU_SMI_STANDIN_INFO", "edge_info_310_four_chips.txt")
    standin.setenv("NPU_SMI_STANDIN_RATED", "1")
    rec = window(collector_for("ascend", 5, rate_hz=20)).to_record()
    assert (rec["power_scope"], rec["power_scope_label"]) == (CARD, "card-wide: 4 chips share this reading (NPU 6)")
    npus = list_npus()
    assert [d.get("power_scope") for d in npus] == [CARD] * 4 + [None]  # NPU 7's reading is implausible: none
    assert npus[2]["power_scope_label"] == "card-wide: 4 chips share this reading (NPU 6)"


def test_a_chips_own_reading_is_taken_over_its_cards(tmp_path):
    """The npu-smi manual's -t power output of an Atlas 200I A2 prints the chip's real-time power and the card's
    (its MCU's "Power Dissipation(W)"): a run on the chip is charged the chip's, labelled so, as in the device
    listing; never another chip's."""
    from metrics.device.ascend import POWER_SOURCE, TABLE_SOURCE, list_npus
    from metrics.device.npu_smi.runner import NpuSmi
    from metrics.power.ascend import NpuSmiCollector

    class Atlas200(NpuSmi):
        def run(self, *args):
            name = "info_t_power_atlas200i-a2_25.2.0.txt" if "power" in args else "info_atlas200i-a2_310b_25.2.0.txt"
            return _fixture(name)

    c = NpuSmiCollector(0, smi=Atlas200(), rate_hz=20)
    c.start()
    r = c.stop()
    assert r.power_w_mean == pytest.approx(9.1) and r.scope == Scope(CHIP, "chip 0 of NPU 0: the chip's own power")
    (npu,) = list_npus(Atlas200())
    assert (npu["power_w"], npu["power_scope"]) == (9.1, CHIP)

    class OnlyChipZero(NpuSmi):  # a 310 card whose -t power printed chip 0's value alone
        def run(self, *args):
            if "power" in args:
                return "NPU ID : 6\n\nChip ID : 0\nNPU Real-time Power(W) : 9.0\n"
            return _fixture("edge_info_310_four_chips.txt")

    own = NpuSmiCollector(4, smi=OnlyChipZero())  # logical 4: NPU 6, chip 0
    assert own.power_source == POWER_SOURCE and own.scope == Scope(CHIP, "chip 0 of NPU 6: the chip's own power")
    other = NpuSmiCollector(6, smi=OnlyChipZero())  # chip 2: never charged chip 0's power, but the card's
    assert other.power_source == TABLE_SOURCE and other.scope.label == "card-wide: 4 chips share this reading (NPU 6)"


def collector_for_strict(index: int):
    from metrics.power.ascend import NpuSmiCollector

    return NpuSmiCollector(index)


def test_ascend_visible_devices_map_to_physical_ids(standin):
    standin.setenv("ASCEND_RT_VISIBLE_DEVICES", "3,1")
    c = collector_for("ascend", 0, rate_hz=20)
    assert c.npu_id == 3
    c = collector_for("ascend", 5)
    c.start()
    assert "not among ASCEND_RT_VISIBLE_DEVICES" in c.stop().reason


def test_npu_smi_absent_gives_an_unavailable_collector(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    c = collector_for("ascend", 0)
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.reason == "npu-smi is not on PATH, so Ascend power cannot be read"


def test_devices_json_lists_each_npu_with_its_power(standin):
    from conftest import run_python

    standin.setenv("NPU_SMI_STANDIN_POWER", "70.5,71.2,69.0,206.9")
    proc = run_python("import sys; from runners.cli import main; sys.exit(main(['devices', '--json']))")
    assert proc.returncode == 0, proc.stderr
    import json

    devices = json.loads(proc.stdout)
    npus = [d for d in devices if d["kind"] == "ascend"]
    assert [d["npu_id"] for d in npus] == [0, 1, 2, 3]
    assert [d["power_w"] for d in npus] == [70.5, 71.2, 69.0, 206.9]
    assert all(d["power_provenance"] == "measured" for d in npus)
    assert npus[3]["health"] == "Warning"
    cpu = next(d for d in devices if d["kind"] == "cpu")
    if not Path("/sys/class/powercap").is_dir():  # as on CI: no RAPL, so no current CPU reading
        assert cpu["power_provenance"] == "unavailable" and cpu["power_w"] is None
        assert "no RAPL interface" in cpu["power_reason"]
        assert cpu["power_estimate_basis"].startswith("runs are charged an estimate: TDP")
    gpu = next(d for d in devices if d["kind"] == "cuda")
    assert gpu.get("absent") and "NVML" in gpu["reason"] or gpu.get("name")


def test_nvml_refuses_a_device_order_other_than_nvmls(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(lambda: 0))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for order in ("FASTEST_FIRST", None):
        if order is None:
            monkeypatch.delenv("CUDA_DEVICE_ORDER")
        else:
            monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
        r = collector_for("cuda", 1)
        r.start()
        out = r.stop()
        assert out.provenance == UNAVAILABLE and "CUDA_DEVICE_ORDER is" in out.reason and "PCI_BUS_ID" in out.reason


def test_workers_run_with_the_order_nvml_uses(monkeypatch):
    from runners.experiments.distributed import launch_env
    from runners.experiments.runs import worker_env

    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    assert worker_env()["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert launch_env("torch", "cpu", Path("/nonexistent"))["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_nvml_errors_while_sampling_make_a_partial_reading_not_a_failed_run(monkeypatch):
    """A transient driver error: some power reads and the closing counter read raise NVMLError."""
    fake = _fake_pynvml(lambda: 0)
    calls = {"fields": 0, "energy": 0}
    real_fields = fake.nvmlDeviceGetFieldValues

    def flaky_fields(h, ids):
        calls["fields"] += 1
        if calls["fields"] in (3, 4):  # after the probes at construction and start
            raise _FakeNVMLError("Unknown Error")
        return real_fields(h, ids)

    def energy(h):
        calls["energy"] += 1
        if calls["energy"] > 2:  # the probe and the start read succeed; the closing read fails
            raise _FakeNVMLError("GPU is lost")
        return 1000

    fake.nvmlDeviceGetFieldValues = flaky_fields
    fake.nvmlDeviceGetTotalEnergyConsumption = energy
    r = _nvml_window(monkeypatch, fake)
    assert r.provenance == MEASURED and r.source == "nvml-power-instant"
    assert r.power_w_mean == pytest.approx(250.0)
    assert "GPU is lost" in r.extra["energy_counter_reason"] and r.extra["energy_j_counter"] is None
    assert r.extra["power_partial_reason"].startswith("2 of ") and "Unknown Error" in r.extra["power_partial_reason"]


def test_an_nvml_error_while_opening_the_gpu_is_an_unavailable_reading(monkeypatch):
    fake = _fake_pynvml(lambda: 0)

    def lost(i):
        raise _FakeNVMLError("GPU is lost")

    fake.nvmlDeviceGetHandleByIndex = lost
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    c = collector_for("cuda", 0)
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.reason == "_FakeNVMLError: GPU is lost" and r.energy_j is None


def test_a_reader_that_raises_costs_only_its_readings():
    """Any exception from a reader (a parse error of npu-smi text, a driver error) is a missing reading with its
    reason: the window keeps the readings that succeeded and says it is partial; all failing is unavailable."""
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise ValueError("unparsable npu-smi row")
        return 100.0

    c = SampledCollector(flaky, "test", rate_hz=100, scope=SENSOR)
    c.start()
    time.sleep(0.2)
    r = c.stop()
    assert r.provenance == MEASURED and r.power_w_mean == pytest.approx(100.0)
    assert "readings failed (last: ValueError: unparsable npu-smi row)" in r.extra["power_partial_reason"]

    def broken():
        raise OSError("npu-smi hung")

    c = SampledCollector(broken, "test", rate_hz=100, scope=SENSOR)
    c.start()
    time.sleep(0.05)
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.reason == "OSError: npu-smi hung" and r.energy_j is None

    c = SampledCollector(lambda: float("inf"), "test", rate_hz=100, scope=SENSOR)  # an absurd value: no reading
    c.start()
    r = c.stop()
    assert r.provenance == UNAVAILABLE and r.reason == "the reader returned inf W"


def test_device_auto_says_why_it_passed_over_each_accelerator(monkeypatch, tmp_path):
    """An npu-smi that hangs: auto falls back to the CPU and says so, naming the time-out."""
    from metrics.device.npu_smi.runner import NpuSmi
    from runners.devices import resolve_auto

    hanging = tmp_path / "npu-smi"
    hanging.write_text("#!/bin/sh\nsleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(NpuSmi.__init__, "__defaults__", ("npu-smi", 0.5))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML library
    device, passed = resolve_auto()
    assert device == "cpu" and len(passed) == 2 and passed[0].startswith("no CUDA GPU: ")
    assert passed[1] == "no Ascend NPU: 'npu-smi info' did not finish within 0.5 s"
