"""Server checks: disk fullness as df counts it, memory and CPU thresholds, paths a host lacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fleetkit.core.alerts import Finding, Severity
from fleetkit.monitor.server import (
    DiskReading,
    ServerReading,
    ServerThresholds,
    check_server,
    format_bytes,
    read_server,
)

GIB = 1024**3


@dataclass
class Usage:
    total: int
    used: int
    free: int


@dataclass
class Memory:
    percent: float


@dataclass
class FakePsutil:
    cpu: float = 10.0
    memory: float = 40.0
    disks: dict[str, Usage | OSError] = field(default_factory=dict)
    load: tuple[float, float, float] | None = (0.5, 0.4, 0.3)
    intervals: list[float | None] = field(default_factory=list)

    def cpu_percent(self, interval: float | None = None) -> float:
        self.intervals.append(interval)
        return self.cpu

    def virtual_memory(self) -> Memory:
        return Memory(self.memory)

    def disk_usage(self, path: str) -> Usage:
        usage = self.disks[path]
        if isinstance(usage, OSError):
            raise usage
        return usage

    def getloadavg(self) -> tuple[float, float, float]:
        if self.load is None:
            raise OSError("no load average here")
        return self.load


def reading(cpu: float = 10.0, memory: float = 40.0, *disks: DiskReading) -> ServerReading:
    return ServerReading(cpu, memory, disks, 0.5, "box")


def disk(used: int, free: int, reserved: int = 50, path: str = "/") -> DiskReading:
    return DiskReading(path, used, free, used + free + reserved)


def finding(findings: list[Finding], key: str) -> Finding:
    (found,) = [f for f in findings if f.key == key]
    return found


# --- disk ---------------------------------------------------------------------------------


def test_disk_percent_is_of_used_plus_free_not_of_total() -> None:
    reading_ = disk(used=900, free=100, reserved=200)  # 75% of total, 90% as df shows it
    assert reading_.used_pct == pytest.approx(90.0)


def test_empty_pseudo_filesystem_counts_as_empty() -> None:
    assert DiskReading("/proc", 0, 0, 0).used_pct == 0.0


@pytest.mark.parametrize(("used", "severity"), [
    (849, Severity.INFO),       # 84.9%
    (850, Severity.WARNING),    # 85.0%: reaching the threshold alerts
    (899, Severity.WARNING),    # 89.9%
    (900, Severity.CRITICAL),   # 90.0%
    (1000, Severity.CRITICAL),  # full
])
def test_disk_severity_at_the_thresholds(used: int, severity: Severity) -> None:
    findings = check_server(reading(10, 40, disk(used, 1000 - used)), ServerThresholds())
    assert finding(findings, "disk:/").severity is severity


def test_disk_alert_when_percent_of_total_would_still_look_fine() -> None:
    # 900 used, 100 free, 150 reserved for root: 78% of total, but full at 90% for users.
    findings = check_server(reading(10, 40, disk(900, 100, reserved=150)), ServerThresholds())
    assert finding(findings, "disk:/").severity is Severity.CRITICAL


def test_disk_critical_message_names_percent_basis_free_space_and_threshold() -> None:
    found = finding(check_server(reading(10, 40, DiskReading(
        "/", used_bytes=int(87.0 * GIB), free_bytes=int(8.1 * GIB), total_bytes=100 * GIB)),
        ServerThresholds()), "disk:/")
    assert found.monitor == "server"
    assert found.message == ("disk / 91.5% full (used/(used+free)), 8.1 GiB free — "
                             "critical at 90%")
    assert found.data["free_bytes"] == int(8.1 * GIB)
    assert found.alerting


def test_disk_fine_is_info_without_threshold_text() -> None:
    found = finding(check_server(reading(10, 40, disk(400, 600 * GIB, path="/var")),
                                 ServerThresholds()), "disk:/var")
    assert found.severity is Severity.INFO
    assert found.message.startswith("disk /var 0.0% full, 600.0 GiB free")
    assert "—" not in found.message


def test_every_disk_gets_its_own_stable_key() -> None:
    findings = check_server(reading(10, 40, disk(1, 9, path="/"), disk(1, 9, path="/srv")),
                            ServerThresholds())
    assert [f.key for f in findings] == ["cpu", "memory", "disk:/", "disk:/srv"]


# --- memory and cpu -----------------------------------------------------------------------


@pytest.mark.parametrize(("pct", "severity"), [
    (89.9, Severity.INFO), (90.0, Severity.WARNING), (94.9, Severity.WARNING),
    (95.0, Severity.CRITICAL),
])
def test_memory_severity_at_the_thresholds(pct: float, severity: Severity) -> None:
    found = finding(check_server(reading(10, pct), ServerThresholds()), "memory")
    assert found.severity is severity
    assert found.message.startswith(f"memory {pct:.1f}% used")


@pytest.mark.parametrize(("pct", "severity"), [(94.9, Severity.INFO), (95.0, Severity.WARNING),
                                               (100.0, Severity.WARNING)])
def test_cpu_warns_from_its_threshold_and_never_goes_critical(pct: float,
                                                              severity: Severity) -> None:
    found = finding(check_server(reading(pct), ServerThresholds()), "cpu")
    assert found.severity is severity


def test_cpu_message_includes_load_when_known() -> None:
    found = finding(check_server(reading(97.0), ServerThresholds()), "cpu")
    assert found.message == "cpu 97.0% busy, load 0.50 — warning at 95%"


@pytest.mark.parametrize("kwargs", [
    {"disk_warning_pct": 90, "disk_critical_pct": 90},
    {"disk_warning_pct": 95, "disk_critical_pct": 90},
    {"memory_warning_pct": 0},
    {"memory_critical_pct": 101},
    {"cpu_warning_pct": -5},
])
def test_thresholds_reject_impossible_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="_pct"):
        ServerThresholds(**kwargs)


# --- reading ------------------------------------------------------------------------------


def test_read_server_takes_each_path_and_the_cpu_sample_interval() -> None:
    fake = FakePsutil(cpu=33.0, memory=71.5, disks={
        "/": Usage(total=110, used=85, free=15), "/srv": Usage(total=10, used=1, free=9)})
    got = read_server(["/", "/srv"], cpu_interval_s=0.2, psutil_module=fake, host="box")
    assert got == ServerReading(33.0, 71.5, (DiskReading("/", 85, 15, 110),
                                             DiskReading("/srv", 1, 9, 10)), 0.5, "box")
    assert fake.intervals == [0.2]


def test_missing_path_is_an_info_finding_not_an_exception() -> None:
    fake = FakePsutil(disks={"/": Usage(100, 10, 90),
                             "/data": FileNotFoundError(2, "No such file or directory")})
    got = read_server(["/", "/data"], psutil_module=fake, host="box")
    assert got.absent == (("/data", "No such file or directory"),)
    found = finding(check_server(got, ServerThresholds()), "disk:/data")
    assert found.severity is Severity.INFO
    assert found.message == "disk /data not checked: No such file or directory on box"


def test_unreadable_path_is_a_warning() -> None:
    fake = FakePsutil(disks={"/secret": PermissionError(13, "Permission denied")})
    got = read_server(["/secret"], psutil_module=fake, host="box")
    found = finding(check_server(got, ServerThresholds()), "disk:/secret")
    assert found.severity is Severity.WARNING
    assert found.message == "disk /secret could not be read: Permission denied"


def test_host_without_load_average_reads_none() -> None:
    got = read_server([], psutil_module=FakePsutil(load=None), host="box")
    assert got.load_1m is None
    assert finding(check_server(got, ServerThresholds()), "cpu").message == "cpu 10.0% busy"


def test_read_server_with_real_psutil_gives_sane_numbers() -> None:
    got = read_server(["/", "/no/such/path/fleetkit"], cpu_interval_s=0.05)
    assert 0.0 <= got.cpu_pct <= 100.0
    assert 0.0 < got.memory_pct <= 100.0
    (root,) = got.disks
    assert root.path == "/"
    assert root.total_bytes > 0
    assert root.used_bytes + root.free_bytes <= root.total_bytes
    assert 0.0 <= root.used_pct <= 100.0
    assert [path for path, _ in got.absent] == ["/no/such/path/fleetkit"]
    assert got.host
    assert all(f.monitor == "server" for f in check_server(got, ServerThresholds()))


def test_format_bytes_uses_binary_units() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536 * 1024) == "1.5 MiB"
    assert format_bytes(int(8.1 * GIB)) == "8.1 GiB"
    assert format_bytes(3 * 1024**4) == "3.0 TiB"
