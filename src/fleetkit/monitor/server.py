"""Server health: CPU, memory and disk readings, and the findings they give."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

from fleetkit.core.alerts import Finding, Severity

MONITOR = "server"


class _DiskUsage(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def free(self) -> int: ...


class _VirtualMemory(Protocol):
    @property
    def percent(self) -> float: ...


class PsutilLike(Protocol):
    """The part of psutil read here, so tests can pass a fake module."""

    def cpu_percent(self, interval: float | None = None) -> float: ...
    def virtual_memory(self) -> _VirtualMemory: ...
    def disk_usage(self, path: str) -> _DiskUsage: ...
    def getloadavg(self) -> tuple[float, float, float]: ...


@dataclass(frozen=True, slots=True)
class DiskReading:
    path: str
    used_bytes: int
    free_bytes: int
    total_bytes: int

    @property
    def used_pct(self) -> float:
        """Used share of what users can fill, as df shows it: blocks reserved for root are
        in neither `used` nor `free`, so a disk at 100% here is full for the fleet user even
        though `total` still has room."""
        usable = self.used_bytes + self.free_bytes
        return 0.0 if usable <= 0 else 100.0 * self.used_bytes / usable


@dataclass(frozen=True, slots=True)
class ServerReading:
    cpu_pct: float
    memory_pct: float
    disks: tuple[DiskReading, ...]
    load_1m: float | None
    host: str
    # (path, why) for each watched path that could not be read: a gap to report, not a crash.
    unreadable: tuple[tuple[str, str], ...] = ()
    # (path, why) for watched paths absent on this host: normal where a host runs only part
    # of the fleet, so only worth an info line.
    absent: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ServerThresholds:
    disk_warning_pct: float = 85.0
    disk_critical_pct: float = 90.0
    memory_warning_pct: float = 90.0
    memory_critical_pct: float = 95.0
    cpu_warning_pct: float = 95.0

    def __post_init__(self) -> None:
        for name in ("disk", "memory"):
            warning = getattr(self, f"{name}_warning_pct")
            critical = getattr(self, f"{name}_critical_pct")
            _check_pct(f"{name}_warning_pct", warning)
            _check_pct(f"{name}_critical_pct", critical)
            if warning >= critical:
                raise ValueError(f"{name}_warning_pct ({warning}) must be below "
                                 f"{name}_critical_pct ({critical})")
        _check_pct("cpu_warning_pct", self.cpu_warning_pct)


def _check_pct(name: str, value: float) -> None:
    if not 0 < value <= 100:
        raise ValueError(f"{name} must be in (0, 100], got {value}")


def read_server(paths: Sequence[str], *, cpu_interval_s: float = 0.5,
                psutil_module: PsutilLike = psutil, host: str | None = None) -> ServerReading:
    """One reading of this host. Blocks for `cpu_interval_s` (psutil samples CPU over it)."""
    disks: list[DiskReading] = []
    unreadable: list[tuple[str, str]] = []
    absent: list[tuple[str, str]] = []
    for path in paths:
        try:
            usage = psutil_module.disk_usage(path)
        except FileNotFoundError as exc:
            absent.append((path, exc.strerror or "not found"))
        except OSError as exc:
            unreadable.append((path, exc.strerror or str(exc)))
        else:
            disks.append(DiskReading(path, usage.used, usage.free, usage.total))
    return ServerReading(
        cpu_pct=float(psutil_module.cpu_percent(interval=cpu_interval_s)),
        memory_pct=float(psutil_module.virtual_memory().percent),
        disks=tuple(disks), load_1m=_load_1m(psutil_module),
        host=host if host is not None else socket.gethostname(),
        unreadable=tuple(unreadable), absent=tuple(absent))


def _load_1m(psutil_module: PsutilLike) -> float | None:
    try:
        return float(psutil_module.getloadavg()[0])
    except (AttributeError, OSError):  # platforms without a load average
        return None


def check_server(reading: ServerReading, thresholds: ServerThresholds) -> list[Finding]:
    findings = [_cpu_finding(reading, thresholds), _memory_finding(reading, thresholds)]
    findings += [_disk_finding(disk, thresholds) for disk in reading.disks]
    findings += [Finding(MONITOR, f"disk:{path}", Severity.INFO,
                         f"disk {path} not checked: {why} on {reading.host}",
                         {"path": path, "skipped": why}) for path, why in reading.absent]
    findings += [Finding(MONITOR, f"disk:{path}", Severity.WARNING,
                         f"disk {path} could not be read: {why}",
                         {"path": path, "error": why}) for path, why in reading.unreadable]
    return findings


def _cpu_finding(reading: ServerReading, thresholds: ServerThresholds) -> Finding:
    load = "" if reading.load_1m is None else f", load {reading.load_1m:.2f}"
    message = f"cpu {reading.cpu_pct:.1f}% busy{load}"
    severity = Severity.INFO
    if reading.cpu_pct >= thresholds.cpu_warning_pct:
        severity = Severity.WARNING
        message += f" — warning at {thresholds.cpu_warning_pct:g}%"
    return Finding(MONITOR, "cpu", severity, message,
                   {"cpu_pct": reading.cpu_pct, "load_1m": reading.load_1m,
                    "host": reading.host})


def _memory_finding(reading: ServerReading, thresholds: ServerThresholds) -> Finding:
    severity, suffix = _graded(reading.memory_pct, thresholds.memory_warning_pct,
                               thresholds.memory_critical_pct)
    return Finding(MONITOR, "memory", severity, f"memory {reading.memory_pct:.1f}% used{suffix}",
                   {"memory_pct": reading.memory_pct, "host": reading.host})


def _disk_finding(disk: DiskReading, thresholds: ServerThresholds) -> Finding:
    pct = disk.used_pct
    severity, suffix = _graded(pct, thresholds.disk_warning_pct, thresholds.disk_critical_pct)
    basis = " (used/(used+free))" if severity >= Severity.WARNING else ""
    return Finding(MONITOR, f"disk:{disk.path}", severity,
                   f"disk {disk.path} {pct:.1f}% full{basis}, {format_bytes(disk.free_bytes)} "
                   f"free{suffix}",
                   {"path": disk.path, "used_pct": round(pct, 2), "used_bytes": disk.used_bytes,
                    "free_bytes": disk.free_bytes, "total_bytes": disk.total_bytes})


def _graded(value: float, warning: float, critical: float) -> tuple[Severity, str]:
    """A level reaching a threshold alerts: "critical at 90%" means 90.0 is critical."""
    if value >= critical:
        return Severity.CRITICAL, f" — critical at {critical:g}%"
    if value >= warning:
        return Severity.WARNING, f" — warning at {warning:g}%"
    return Severity.INFO, ""


def format_bytes(count: int) -> str:
    """Binary units, one decimal: "8.1 GiB", "512.0 MiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
