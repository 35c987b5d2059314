"""npu-smi parsers on real and hand-made outputs, and the runner against the stand-in in tests/fixtures/bin."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from metrics.device.npu_smi.info import NpuInfo, parse_info
from metrics.device.npu_smi.key_values import PowerReading, parse_key_values, parse_power
from metrics.device.npu_smi.runner import NpuSmi
from metrics.device.npu_smi.values import NpuSmiError
from metrics.device.npu_smi.watch import WatchRow, parse_watch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "npu-smi"
BIN = Path(__file__).resolve().parent / "fixtures" / "bin"
WATCH_HEADER = (FIXTURES / "info_watch_ascend950.txt").read_text().splitlines()[0]
RT = "NPU Real-time Power(W)"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


COLUMNS = ["NpuID(Idx)", "Pwr(W)", "Temp(C)", "AI Core(%)", "AI Cpu(%)", "Ctrl Cpu(%)", "Memory(%)", "Memory BW(%)"]
COLUMNS += ["NPU Util(%)", "AI Cube(%)"]


def watch_fields(*values: str) -> dict[str, str]:
    return dict(zip(COLUMNS, values, strict=True))


# ---------------------------------------------------------------------------------------------- parse_info


def test_parse_info_atlas800_fixture():
    infos = parse_info(fixture("info_atlas800-training_24.1.RC2.txt"))
    expected = [
        (0, "OK", 70.5, 42.0, 4252.0, 15137.0, "0000:C1:00.0"),
        (1, "OK", 71.2, 36.0, 4666.0, 15137.0, "0000:81:00.0"),
        (2, "OK", 69.0, 35.0, 4317.0, 15137.0, "0000:41:00.0"),
        (3, "Warning", 206.9, 39.0, 3616.0, 15039.0, "0000:01:00.0"),
    ]
    assert infos == [
        NpuInfo(npu, 0, "xxx", health, power, temp, 0.0, used, total, 0.0, 32768.0, bus)
        for npu, health, power, temp, used, total, bus in expected
    ]


def test_parse_info_310p_layout_with_na_two_chips_and_process_table():
    infos = parse_info(fixture("edge_info_310p_na_processes.txt"))
    assert infos == [
        NpuInfo(8, 0, "310P3", "OK", None, 45.0, 0.0, 1701.0, 21534.0, None, None, "0000:01:00.0", 0),
        NpuInfo(8, 1, "310P3", "OK", None, 45.0, 3.0, 1690.0, 21534.0, None, None, "0000:01:00.0", 1),
        NpuInfo(9, 0, "310P3", "Alarm", 61.5, None, None, None, 21534.0, None, None, "0000:02:00.0", 2),
    ]
    assert infos[0].memory_mb == (1701.0, 21534.0)  # no HBM column: the chip's memory is Memory-Usage


def test_parse_info_four_chips_on_one_npu_keep_chip_and_logical_device_ids():
    infos = parse_info(fixture("edge_info_310_four_chips.txt"))
    ids = [(i.npu_id, i.chip_id, i.device_id) for i in infos]
    assert ids == [(6, 0, 4), (6, 1, 5), (6, 2, 6), (6, 3, 7), (7, 0, 8)]
    assert [i.power_w for i in infos] == [27.9] * 4 + [None]  # one NPU-level reading for the four chips
    assert infos[3].memory_mb == (None, 8192.0) and infos[3].aicore_pct is None  # NA stays no reading
    (problem,) = infos[4].problems  # "-5" W: that row's power only, every other value of the table is kept
    assert problem.startswith("expected a number or NA for Power(W), found '-5'") and infos[4].temp_c == 45.0


def test_parse_info_newer_layout_without_a_chip_column():
    infos = parse_info(fixture("edge_info_950_no_chip_column.txt"))
    assert [(i.npu_id, i.chip_id, i.device_id, i.name) for i in infos] == [(0, 0, None, "Ascend950PR")] + [
        (1, 0, None, "Ascend950PR")
    ]
    assert infos[0].power_w == 296.5 and infos[0].aicore_pct == 12.0 and infos[0].memory_mb == (51200.0, 131072.0)
    assert infos[0].bus_id == "0000:9D:00.0" and infos[0].problems == ()
    assert infos[1].power_w is None and "found '1e308'" in infos[1].problems[0] and infos[1].temp_c == 45.0


def test_parse_info_real_310b_table_with_bus_id_na():
    (info,) = parse_info(fixture("info_atlas200i-a2_310b_25.2.0.txt"))
    assert (info.npu_id, info.chip_id, info.device_id, info.bus_id, info.power_w) == (0, 0, 0, "NA", 10.4)
    assert info.memory_mb == (957.0, 10810.0)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("7x.5", "found '7x.5'"), ("-5", "found '-5'"), ("1e308", "found '1e308'"), ("99999", "outside the plausible")],
)
def test_an_unreadable_or_implausible_value_affects_its_row_only(value, problem):
    text = fixture("info_atlas800-training_24.1.RC2.txt").replace("| 69.0  ", f"| {value:<6}")
    infos = parse_info(text)
    assert [i.npu_id for i in infos] == [0, 1, 2, 3] and [i.power_w for i in infos] == [70.5, 71.2, None, 206.9]
    assert problem in infos[2].problems[0] and all(not i.problems for i in infos if i.npu_id != 2)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "malformed_info_missing_chip_row.txt",
            "expected a second (chip) row for NPU 1, found none after '| 1     xxx",
        ),
        ("malformed_info_truncated.txt", "found a row cut short: '| 0                    | 0000:01:00.0  | 0  "),
    ],
)
def test_parse_info_malformed_fixtures(name, message):
    with pytest.raises(NpuSmiError) as err:
        parse_info(fixture(name))
    assert message in str(err.value)


def test_parse_info_rejects_empty_garbage_and_headless_text():
    with pytest.raises(NpuSmiError, match="expected an npu-smi info table with a header row .*found '' first"):
        parse_info("")
    with pytest.raises(NpuSmiError, match="found 'dcmi module initialize failed' first"):
        parse_info("\ndcmi module initialize failed\n")


def test_parse_info_rejects_header_without_rows_and_a_missing_chip_header():
    lines = fixture("info_atlas800-training_24.1.RC2.txt").splitlines()
    with pytest.raises(NpuSmiError, match="expected at least one NPU row below the npu-smi info header"):
        parse_info("\n".join(lines[:6]))
    with pytest.raises(NpuSmiError, match="expected the second header row 'Chip | Bus-Id | ...', found '\\+=+"):
        parse_info("\n".join(lines[:4] + lines[5:]))


def test_parse_info_rejects_a_row_with_a_missing_value_or_cell():
    text = fixture("info_atlas800-training_24.1.RC2.txt")
    no_temp = text.replace("| 70.5        42                1232 / 1232          |", "| 70.5        1232 / 1232      |")
    with pytest.raises(NpuSmiError, match="expected values for 'Power\\(W\\) Temp\\(C\\) Hugepages-Usage\\(page\\)'"):
        parse_info(no_temp)
    no_cell = text.replace("| 0                    | 0000:C1:00.0  |", "| 0                    |")
    with pytest.raises(NpuSmiError, match="expected 3 cells as in the header, found 2: '\\| 0 "):
        parse_info(no_cell)
    bad_chip = text.replace("| 0                    | 0000:81:00.0", "| x                    | 0000:81:00.0")
    with pytest.raises(NpuSmiError, match="expected a chip row starting with a chip number, found '\\| x "):
        parse_info(bad_chip)


def test_parse_info_keeps_npus_cut_off_after_a_complete_row_pair():
    lines = fixture("info_atlas800-training_24.1.RC2.txt").splitlines()
    assert [info.npu_id for info in parse_info("\n".join(lines[:11]))] == [0, 1]  # no closing separator
    with pytest.raises(NpuSmiError, match="expected a second \\(chip\\) row for NPU 2"):
        parse_info("\n".join(lines[:13]))  # NPU 2's first row only


# ---------------------------------------------------------------------------------------------- key/value blocks


def test_parse_key_values_power_fixture():
    assert parse_key_values(fixture("info_t_power_ascend950.txt")) == [{"NPU ID": "0", RT: "296.5"}]


def test_parse_key_values_common_fixture_blocks():
    chip0 = {"Memory Usage Rate(%)": "6", "HBM Usage Rate(%)": "0", "Aicore Usage Rate(%)": "0"}
    chip0 |= {"Aicore Freq(MHZ)": "1000", "Aicore curFreq(MHZ)": "1000", "Aicore Count": "32"}
    chip1 = {"Memory Usage Rate(%)": "4", "Aicore Usage Rate(%)": "0", "Aicore Freq(MHZ)": "1080"}
    chip1 |= {"Aicore curFreq(MHZ)": "960", "Temperature(C)": "43"}
    assert parse_key_values(fixture("info_t_common_910b_and_310p.txt")) == [
        {"NPU ID": "0", "Chip Count": "1"},
        {"NPU ID": "0", "Chip ID": "0", **chip0, "Temperature(C)": "46", RT: "69.0"},
        {"NPU ID": "1", "Chip Count": "1"},
        {"NPU ID": "1", "Chip ID": "0", **chip1},
        {"NPU ID": "1", "Chip Name": "mcu", "Temperature(C)": "41", RT: "13.4"},
    ]


def test_parse_key_values_hand_made_fixtures():
    assert parse_key_values(fixture("edge_power_310_rated.txt")) == [
        {"NPU ID": "0", "Chip Count": "1"},
        {"NPU ID": "0", "Chip ID": "0", "Rated Power Dissipation(W)": "8.0"},
    ]
    assert parse_key_values(fixture("edge_power_mcu_dissipation.txt")) == [
        {"NPU ID": "2", "Chip Count": "1"},
        {"NPU ID": "2", "Chip ID": "0", "Temperature(C)": "40"},
        {"NPU ID": "2", "Chip Name": "mcu", "Temperature(C)": "38", "Power Dissipation(W)": "12.5"},
    ]
    assert parse_key_values(fixture("edge_power_na.txt")) == [{"NPU ID": "5", RT: "NA"}]
    assert parse_key_values(fixture("malformed_power_no_power_key.txt")) == [
        {"NPU ID": "0", "Chip Count": "1"},
        {"NPU ID": "0", "Chip ID": "0", "Temperature(C)": "46"},
    ]


def test_parse_key_values_splits_without_blank_lines_and_keeps_colons_in_values():
    text = fixture("info_t_common_910b_and_310p.txt").replace("\n\n", "\n")
    assert [block.get("Chip ID", block.get("Chip Name")) for block in parse_key_values(text)] == [
        None,
        "0",
        None,
        "0",
        "mcu",
    ]
    board = "\tNPU ID : 4\n\tChip Count : 1\n\n\tChip ID : 0\n\tPCIe Bus Info : 0000:C1:00.0\n"
    assert parse_key_values(board) == [
        {"NPU ID": "4", "Chip Count": "1"},
        {"NPU ID": "4", "Chip ID": "0", "PCIe Bus Info": "0000:C1:00.0"},
    ]


def test_parse_key_values_rejects_bad_input():
    with pytest.raises(NpuSmiError, match="expected 'key : value' lines from npu-smi, found no output"):
        parse_key_values(" \n\n")
    with pytest.raises(NpuSmiError, match="expected a 'key : value' line, found 'Segmentation fault'"):
        parse_key_values(fixture("info_t_power_ascend950.txt") + "Segmentation fault\n")
    with pytest.raises(NpuSmiError, match="expected each key once per block, found 'Temperature\\(C\\)' again"):
        parse_key_values("NPU ID : 0\nTemperature(C) : 40\nTemperature(C) : 41\n")


# ---------------------------------------------------------------------------------------------- parse_power


def test_parse_power_fixtures():
    assert parse_power(fixture("info_t_power_ascend950.txt")) == [PowerReading(0, None, 296.5, "real-time", RT, "npu")]
    assert parse_power(fixture("info_t_power_ascend950.txt"), npu_id=0) == [
        PowerReading(0, None, 296.5, "real-time", RT, "npu")
    ]
    assert parse_power(fixture("info_t_common_910b_and_310p.txt")) == [
        PowerReading(0, 0, 69.0, "real-time", RT, "chip"),
        PowerReading(1, None, 13.4, "real-time", RT, "card"),
    ]
    assert parse_power(fixture("info_t_common_910b_and_310p.txt"), npu_id=1) == [
        PowerReading(1, None, 13.4, "real-time", RT, "card")
    ]


def test_parse_power_rated_mcu_dissipation_and_na():
    assert parse_power(fixture("edge_power_310_rated.txt")) == [
        PowerReading(0, 0, 8.0, "rated", "Rated Power Dissipation(W)", "chip")
    ]
    assert parse_power(fixture("edge_power_mcu_dissipation.txt"), npu_id=2) == [
        PowerReading(2, None, 12.5, "real-time", "Power Dissipation(W)", "card")
    ]
    assert parse_power(fixture("edge_power_na.txt")) == [PowerReading(5, None, None, "unavailable", RT, "npu")]


def test_parse_power_says_what_each_reading_covers():
    """The manual's Atlas 200I A2 output: the chip's "NPU Real-time Power(W)" and the card's "Power Dissipation(W)"
    in the MCU's block, split by a line of spaces."""
    assert parse_power(fixture("info_t_power_atlas200i-a2_25.2.0.txt")) == [
        PowerReading(0, 0, 9.1, "real-time", RT, "chip"),
        PowerReading(0, None, 16.9, "real-time", "Power Dissipation(W)", "card"),
    ]


def test_parse_power_prefers_real_time_over_rated_in_one_block_and_uses_npu_id_when_unnamed():
    text = "Rated Power Dissipation(W) : 8.0\nNPU Real-time Power(W) : 6.5\n"
    assert parse_power(text, npu_id=7) == [PowerReading(7, None, 6.5, "real-time", RT, "npu")]
    with pytest.raises(NpuSmiError, match="expected an 'NPU ID' line before the power value"):
        parse_power(text)


def test_parse_power_malformed():
    with pytest.raises(NpuSmiError, match="expected a number or NA for NPU Real-time Power\\(W\\), found '7x.5'"):
        parse_power(fixture("malformed_power_bad_value.txt"))
    with pytest.raises(NpuSmiError) as err:
        parse_power(fixture("malformed_power_no_power_key.txt"))
    assert str(err.value) == (
        "expected a power key (NPU Real-time Power(W), Power Dissipation(W), Rated Power Dissipation(W)), "
        "found only the keys ['Chip Count', 'Chip ID', 'NPU ID', 'Temperature(C)']"
    )
    with pytest.raises(NpuSmiError) as err:  # a reply about other NPUs says so, not "no power key"
        parse_power(fixture("info_t_common_910b_and_310p.txt"), npu_id=3)
    assert str(err.value) == "asked for the power of NPU 3, npu-smi answered for NPU 0, 1 only"
    with pytest.raises(NpuSmiError, match="Power\\(W\\) 1000000 W is outside the plausible 0 to 2000 W"):
        parse_power("NPU ID : 0\nNPU Real-time Power(W) : 1000000\n")
    with pytest.raises(NpuSmiError, match="expected 'key : value' lines from npu-smi, found no output"):
        parse_power("")
    with pytest.raises(NpuSmiError, match="expected a number or NA for NPU Real-time Power\\(W\\), found '-3.0'"):
        parse_power("NPU ID : 0\nNPU Real-time Power(W) : -3.0\n")


# ---------------------------------------------------------------------------------------------- parse_watch


def test_parse_watch_fixture():
    assert parse_watch(fixture("info_watch_ascend950.txt")) == [
        WatchRow(0, 280.8, 84.0, 0.0, watch_fields("0", "280.8", "84", "0", "0", "0", "3", "0", "0", "0")),
        WatchRow(0, 280.9, 84.0, 0.0, watch_fields("0", "280.9", "84", "0", "0", "0", "3", "0", "0", "0")),
    ]


def test_parse_watch_repeated_header_and_na():
    rows = parse_watch(fixture("edge_watch_repeated_header_na.txt"))
    assert [(r.npu_id, r.power_w, r.temp_c, r.aicore_pct) for r in rows] == [
        (1, 301.2, 70.0, 55.0),
        (1, None, 71.0, 56.0),
        (1, 299.9, None, None),
    ]
    assert rows[1].fields == watch_fields("1", "NA", "71", "56", "0", "1", "40", "12", "61", "51")


def test_parse_watch_ignores_only_a_cut_off_final_line():
    text = fixture("info_watch_ascend950.txt") + "0           281.0       84          0"
    assert [row.power_w for row in parse_watch(text)] == [280.8, 280.9]
    with pytest.raises(NpuSmiError, match="expected 10 values per watch row, found 4: '0           281.0"):
        parse_watch(text + "\n")  # the same row, finished by a newline: the tool printed it so
    complete_unterminated = fixture("info_watch_ascend950.txt").rstrip("\n")
    assert [row.power_w for row in parse_watch(complete_unterminated)] == [280.8, 280.9]
    assert parse_watch(WATCH_HEADER + "\n") == []


def test_parse_watch_malformed():
    with pytest.raises(NpuSmiError, match="expected 10 values per watch row, found 5: '0           280.9"):
        parse_watch(fixture("malformed_watch_short_row.txt"))
    with pytest.raises(
        NpuSmiError, match="expected the npu-smi watch header \\(NpuID\\(Idx\\) Pwr\\(W\\) ...\\), found ''"
    ):
        parse_watch("")
    rows_only = fixture("info_watch_ascend950.txt").split("\n", 1)[1]
    with pytest.raises(NpuSmiError, match="expected the npu-smi watch header .* first, found '0           280.8"):
        parse_watch(rows_only)
    with pytest.raises(NpuSmiError, match="expected a watch header with NpuID\\(Idx\\) and Pwr\\(W\\) columns"):
        parse_watch("Error: the device is busy\n")
    changed = fixture("info_watch_ascend950.txt") + "NpuID(Idx)  Pwr(W)\n0  1.0\n"
    with pytest.raises(NpuSmiError, match="expected the repeated watch header to match the first one"):
        parse_watch(changed)
    bad = fixture("info_watch_ascend950.txt").replace("280.9", "7x.5")
    with pytest.raises(NpuSmiError, match="expected a number or NA for Pwr\\(W\\), found '7x.5'"):
        parse_watch(bad)


# ---------------------------------------------------------------------------------------------- runner


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The stand-in first on PATH, a fresh schedule state file, and no schedule or NA set."""
    monkeypatch.setenv("PATH", f"{BIN}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("NPU_SMI_STANDIN_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("NPU_SMI_STANDIN_POWER", raising=False)
    monkeypatch.delenv("NPU_SMI_STANDIN_NA", raising=False)
    return tmp_path / "state"


def script(tmp_path: Path, name: str, body: str) -> Path:
    """An executable Python script in ``tmp_path``, run by this interpreter."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def test_runner_info_replays_the_atlas_table(standin):
    assert NpuSmi().info() == parse_info(fixture("info_atlas800-training_24.1.RC2.txt"))
    assert [info.power_w for info in NpuSmi().info()] == [70.5, 71.2, 69.0, 206.9]


def test_runner_power_follows_the_schedule(standin, monkeypatch):
    monkeypatch.setenv("NPU_SMI_STANDIN_POWER", "280.8,300.0,250.5")
    smi = NpuSmi()
    readings = [smi.power(2) for _ in range(4)]
    assert readings == [PowerReading(2, None, w, "real-time", RT, "npu") for w in (280.8, 300.0, 250.5, 280.8)]
    assert standin.read_text() == "4"


def test_runner_power_default_na_and_common(standin, monkeypatch):
    assert NpuSmi().power(0) == PowerReading(0, None, 296.5, "real-time", RT, "npu")
    assert NpuSmi().common(0) == [PowerReading(0, 0, 69.0, "real-time", RT, "chip")]
    assert NpuSmi().common(1) == [PowerReading(1, None, 13.4, "real-time", RT, "card")]
    monkeypatch.setenv("NPU_SMI_STANDIN_NA", "1")
    reading = NpuSmi().power(1)
    assert reading.watts is None and reading.kind == "unavailable"
    assert NpuSmi().common(1) == [PowerReading(1, None, None, "unavailable", RT, "card")]


def test_runner_power_returns_a_rating_only_as_rated(tmp_path, monkeypatch):
    text = fixture("edge_power_310_rated.txt")
    script(tmp_path, "npu-smi", f"print({text!r}, end='')\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert NpuSmi().power(0) == PowerReading(0, 0, 8.0, "rated", "Rated Power Dissipation(W)", "chip")


def test_runner_power_refuses_several_chip_readings(tmp_path, monkeypatch):
    text = "NPU ID : 0\n\nChip ID : 0\nNPU Real-time Power(W) : 10.0\n\nChip ID : 1\nNPU Real-time Power(W) : 11.0\n"
    script(tmp_path, "npu-smi", f"print({text!r}, end='')\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NpuSmiError, match="expected one power reading for NPU 0, found 2"):
        NpuSmi().power(0)
    assert NpuSmi().power(0, chip_id=1) == PowerReading(0, 1, 11.0, "real-time", RT, "chip")  # that chip's own


def test_runner_power_takes_the_chips_reading_else_the_cards(tmp_path, monkeypatch):
    text = fixture("info_t_power_atlas200i-a2_25.2.0.txt")
    script(tmp_path, "npu-smi", f"print({text!r}, end='')\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert NpuSmi().power(0, chip_id=0) == PowerReading(0, 0, 9.1, "real-time", RT, "chip")
    assert NpuSmi().power(0) == PowerReading(0, None, 16.9, "real-time", "Power Dissipation(W)", "card")
    assert NpuSmi().power(0, chip_id=3).covers == "card"  # no block of chip 3: the card's, never another chip's


def test_runner_not_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NpuSmiError) as err:
        NpuSmi().power(0)
    assert str(err.value) == "npu-smi is not on PATH, so Ascend power cannot be read"
    with pytest.raises(NpuSmiError, match="npu-smi is not on PATH"):
        NpuSmi().watch(0, 0.05, 1)


def test_runner_non_zero_exit_quotes_stderr(standin):
    with pytest.raises(NpuSmiError) as err:
        NpuSmi().run("info", "--bogus")
    assert str(err.value) == (
        "'npu-smi info --bogus' exited with code 2: npu-smi: unknown arguments: info --bogus; see npu-smi -h"
    )
    with pytest.raises(NpuSmiError, match="'npu-smi info -t common -i 2' exited with code 2: .*not in the common"):
        NpuSmi().common(2)


def test_runner_time_out(tmp_path, monkeypatch):
    script(tmp_path, "npu-smi", "import time\ntime.sleep(30)\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(NpuSmiError, match="'npu-smi info -t power -i 0' did not finish within 0.3 s"):
        NpuSmi(timeout_s=0.3).power(0)
    assert time.monotonic() - start < 3


def test_runner_watch_returns_scheduled_rows_and_stops_the_process(standin, monkeypatch):
    monkeypatch.setenv("NPU_SMI_STANDIN_POWER", "280.8,300.0,250.5")
    rows = NpuSmi().watch(3, delay_s=0.05, count=4)
    assert [(row.npu_id, row.power_w, row.temp_c) for row in rows] == [
        (3, w, 84.0) for w in (280.8, 300.0, 250.5, 280.8)
    ]
    assert rows[1].fields == watch_fields("3", "300.0", "84", "0", "0", "0", "3", "0", "0", "0")
    taken = standin.read_text()
    time.sleep(0.3)  # six more rows' worth: a process left running would keep taking values
    assert standin.read_text() == taken


def test_runner_watch_na_is_none(standin, monkeypatch):
    monkeypatch.setenv("NPU_SMI_STANDIN_NA", "1")
    rows = NpuSmi().watch(0, delay_s=0.05, count=2)
    assert [row.power_w for row in rows] == [None, None]
    assert [row.fields["Pwr(W)"] for row in rows] == ["NA", "NA"]


def test_runner_watch_time_out_kills_a_silent_stream(tmp_path, monkeypatch):
    marker = tmp_path / "alive"
    body = f"import time, pathlib\nprint({WATCH_HEADER!r}, flush=True)\n"
    body += f"while True:\n    pathlib.Path({str(marker)!r}).write_text(str(time.time()))\n    time.sleep(0.05)\n"
    script(tmp_path, "npu-smi", body)
    monkeypatch.setenv("PATH", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(NpuSmiError, match="'npu-smi info watch -i 0 -d 0.1' gave 0 of 2 rows before the time limit"):
        NpuSmi(timeout_s=0.3).watch(0, delay_s=0.1, count=2)
    assert time.monotonic() - start < 3
    last = marker.read_text()
    time.sleep(0.2)
    assert marker.read_text() == last


def test_runner_watch_early_exit(tmp_path, monkeypatch):
    rows = fixture("info_watch_ascend950.txt")
    script(tmp_path, "npu-smi", f"import sys\nprint({rows!r}, end='')\nsys.exit(int(sys.argv[-1] == '3'))\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert [row.power_w for row in NpuSmi().watch(0, delay_s=1, count=5)] == [280.8, 280.9]
    with pytest.raises(NpuSmiError, match="'npu-smi info watch -i 0 -d 3' exited with code 1: no message"):
        NpuSmi().watch(0, delay_s=3, count=5)
    script(tmp_path, "npu-smi", f"print({WATCH_HEADER!r})\n")
    with pytest.raises(NpuSmiError, match="'npu-smi info watch -i 0 -d 1' ended without printing a data row"):
        NpuSmi().watch(0, delay_s=1, count=5)


def test_runner_watch_rejects_bad_arguments(standin):
    with pytest.raises(ValueError, match="expected delay_s > 0 and count >= 1"):
        NpuSmi().watch(0, delay_s=0, count=1)
    with pytest.raises(ValueError, match="expected delay_s > 0 and count >= 1"):
        NpuSmi().watch(0, delay_s=1, count=0)
