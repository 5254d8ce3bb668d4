"""`fleet backtest` as a user runs it (in process, through `fleetkit.cli.app.main`):
sub-minute bars, the CSV rules, the trades and chart files, the progress bar."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetkit.cli.app import main
from tests.acceptance.cli_support import assert_json_user_error, assert_user_error

STRATEGY = ["--strategy", "sma_cross", "-p", "fast=3", "-p", "slow=8"]
NYSE_KO = ["--market", "NYSE", "--symbol", "KO"]
CSV_HEADER = "time,open,high,low,close,volume"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_CONFIG", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


Fleet = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fleet(capsys: pytest.CaptureFixture[str]) -> Fleet:
    """`fleet backtest ARGS...`: exit code, stdout and stderr, as from a real process."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["backtest", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["fleet", "backtest", *args], code, out, err)

    return run


def minute_bars(path: Path, count: int, *, start_s: int = 1704465000, step_s: int = 60) -> Path:
    """`count` bars from Friday 2024-01-05 14:30 UTC (NYSE's open), a gentle wave."""
    lines = [CSV_HEADER]
    for i in range(count):
        price = 60 + (i % 40 - 20) * 0.05 if (i // 40) % 2 else 60 - (i % 40 - 20) * 0.05
        lines.append(f"{start_s + step_s * i},{price:.2f},{price + 0.1:.2f},{price - 0.1:.2f},"
                     f"{price:.2f},100")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert_user_error(result, *fragments)
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line


@pytest.mark.parametrize("interval", ["5s", "10s", "15s", "30s"])
def test_a_sub_minute_backtest_replays_the_bars_asked_for(fleet: Fleet, interval: str) -> None:
    result = fleet(*STRATEGY, "--interval", interval, "--bars", "400", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bars"] == 400
    assert summary["first_bar"] == "2024-01-02T00:00:00+00:00"


def test_a_config_bot_with_five_second_bars_backtests(fleet: Fleet, workdir: Path) -> None:
    config = workdir / "fleet.yaml"
    config.write_text('bots:\n  - {name: fast-btc, market: CRYPTO, symbols: ["BTC/USDT"], '
                      "strategy: sma_cross, params: {fast: 3, slow: 8}, bar_interval: 5s}\n",
                      encoding="utf-8")
    result = fleet("--config", str(config), "--bot", "fast-btc", "--bars", "300", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bars"] == 300
    assert summary["last_bar"] == "2024-01-02T00:24:55+00:00"  # 300 bars of 5 s


def test_a_csv_spaced_unlike_the_interval_is_refused_with_the_interval_to_pass(
        fleet: Fleet, workdir: Path) -> None:
    bars = minute_bars(workdir / "ko.csv", 60, step_s=300)
    line = one_line(fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars)),
                    str(bars), "5m apart", "1m interval", "pass --interval 5m")
    assert line.startswith("error: ")
    result = fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars), "--interval", "5m", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bars"] == 60


def test_interval_overrides_a_bots_bar_interval(fleet: Fleet, workdir: Path) -> None:
    config = workdir / "fleet.yaml"
    config.write_text('bots:\n  - {name: ko, market: NYSE, symbols: ["KO"], '
                      "strategy: sma_cross, params: {fast: 3, slow: 8}}\n", encoding="utf-8")
    bars = minute_bars(workdir / "ko.csv", 60, step_s=300)
    assert_user_error(fleet("--bot", "ko", "--csv", str(bars)), "pass --interval 5m")
    result = fleet("--bot", "ko", "--csv", str(bars), "--interval", "5m", "--json")
    assert result.returncode == 0, result.stderr
    assert_user_error(fleet("--bot", "ko", "--interval", "7s"), "--interval", "5s, 10s")


def test_weekend_bars_in_an_nyse_csv_are_replayed_with_one_warning(fleet: Fleet,
                                                                   workdir: Path) -> None:
    # 400 minutes from Friday 14:30 UTC: NYSE closes at 21:00, so the last 10 are after it.
    bars = minute_bars(workdir / "ko.csv", 400)
    result = fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bars"] == 400
    [warning] = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith(f"warning: {bars}: 10 of 400 bars lie outside NYSE's trading "
                              "sessions (XNYS), the first at 2024-01-05T21:00:00+00:00")


def test_a_crypto_csv_on_a_weekend_is_replayed_without_a_warning(fleet: Fleet,
                                                                 workdir: Path) -> None:
    bars = minute_bars(workdir / "btc.csv", 100, start_s=1704549600)  # Saturday
    result = fleet(*STRATEGY, "--csv", str(bars), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


GOOD_ROW = "2024-01-05T14:30:00Z,60,60.5,59.5,60.2,100"


@pytest.mark.parametrize(("rows", "fragments"), [
    (["2024-01-05 at noon,60,61,59,60,1"], ["row 2, column time", "ISO 8601"]),
    (["2024-01-05T14:31:00Z,60,61,59,nan,1"], ["row 3, column close", "'nan' is not a number"]),
    (["2024-01-05T14:31:00Z,60,61,59,,1"], ["row 3, column close is empty"]),
    (["2024-01-05T14:31:00Z,-60,61,59,60,1"], ["row 3, column open", "not a positive price"]),
    (["2024-01-05T14:31:00Z,60,sixty,59,60,1"], ["row 3, column high", "'sixty' is not a number"]),
    (["2024-01-05T14:31:00Z,60,59,61,60,1"], ["row 3", "high 59 is below low 61"]),
    (["2024-01-05T14:29:00Z,60,61,59,60,1"], ["row 3, column time", "sort the file by time"]),
    ([GOOD_ROW], ["row 3, column time", "remove the duplicate row"]),
], ids=["bad-time", "nan-price", "empty-price", "negative-price", "text-price", "high-below-low",
        "unsorted", "duplicate"])
def test_every_csv_problem_is_one_line_naming_the_file_row_and_fix(
        fleet: Fleet, workdir: Path, rows: list[str], fragments: list[str]) -> None:
    bars = workdir / "ko.csv"
    bars.write_text("\n".join([CSV_HEADER, *([] if "at noon" in rows[0] else [GOOD_ROW]),
                               *rows]) + "\n", encoding="utf-8")
    line = one_line(fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars)), str(bars), *fragments)
    assert "np.float64" not in line


@pytest.mark.parametrize(("text", "fragments"), [
    ("", ["is empty", "header line"]),
    ("time,open,high,low\n2024-01-05T14:30:00Z,1,1,1\n", ["no close column"]),
    (CSV_HEADER + "\n", ["no bars"]),
], ids=["empty-file", "missing-column", "header-only"])
def test_a_csv_without_bars_is_one_line_too(fleet: Fleet, workdir: Path, text: str,
                                            fragments: list[str]) -> None:
    bars = workdir / "ko.csv"
    bars.write_text(text, encoding="utf-8")
    one_line(fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars)), str(bars), *fragments)


def test_a_csv_problem_under_json_is_a_json_error(fleet: Fleet, workdir: Path) -> None:
    bars = workdir / "ko.csv"
    bars.write_text(f"{CSV_HEADER}\n{GOOD_ROW}\n2024-01-05T14:31:00Z,60,61,59,nan,1\n",
                    encoding="utf-8")
    assert_json_user_error(fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars), "--json"), "config",
                           "row 3, column close")


def test_trades_and_plot_are_written_and_named_in_the_json(fleet: Fleet, workdir: Path) -> None:
    result = fleet(*STRATEGY, "--bars", "600", "--trades", "out.csv", "--plot", "out.png",
                   "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trades_file"] == "out.csv" and summary["plot_file"] == "out.png"
    with (workdir / "out.csv").open(encoding="utf-8", newline="") as handle:
        fills = list(csv.DictReader(handle))
    assert len(fills) == summary["fills"] > 0
    assert {"ts", "instrument", "side", "quantity", "price", "fee"} <= set(fills[0])
    assert (workdir / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in workdir.iterdir() if p.is_file()) == ["out.csv", "out.png"]


def test_the_summary_says_where_the_files_went(fleet: Fleet, workdir: Path) -> None:
    (workdir / "fills.csv").write_text("an older run\n", encoding="utf-8")
    result = fleet(*STRATEGY, "--bars", "600", "--trades", "fills.csv", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "fills written to fills.csv" in result.stdout
    assert "an older run" not in (workdir / "fills.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--trades", "missing/t.csv"], ["--trades missing/t.csv", "directory missing does not exist"]),
    (["--plot", "equity.svg"], ["--plot equity.svg", "name it equity.png"]),
    (["--plot", "."], ["is a directory"]),
    (["--trades", "same.png", "--plot", "same.png"], ["both name same.png"]),
], ids=["missing-directory", "not-png", "directory", "same-file"])
def test_an_output_path_that_cannot_be_written_is_refused_before_the_replay(
        fleet: Fleet, workdir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
        fragments: list[str]) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a replay would show its progress bar
    refused = fleet(*STRATEGY, "--bars", "2000", *args)
    one_line(refused, *fragments)
    assert "replaying" not in refused.stdout
    assert not (workdir / "missing").exists()


def test_the_replayed_csv_is_never_overwritten_with_trades(fleet: Fleet, workdir: Path) -> None:
    bars = minute_bars(workdir / "ko.csv", 100)
    before = bars.read_text(encoding="utf-8")
    one_line(fleet(*STRATEGY, *NYSE_KO, "--csv", str(bars), "--trades", str(bars)),
             "is the --csv file being replayed")
    assert bars.read_text(encoding="utf-8") == before


def test_the_progress_bar_shows_on_a_terminal_but_not_with_json(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stdout is a terminal
    shown = fleet(*STRATEGY, "--bars", "2000")
    assert shown.returncode == 0, shown.stderr
    assert "replaying" in shown.stdout and "2,000/2,000 bars" in shown.stdout
    quiet = fleet(*STRATEGY, "--bars", "2000", "--json")
    assert "replaying" not in quiet.stdout
    json.loads(quiet.stdout)
