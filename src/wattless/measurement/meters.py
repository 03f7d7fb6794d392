"""Hardware energy meters: RAPL through Linux powercap (CPU packages and DRAM) and NVML (NVIDIA GPUs).

A :class:`Meter` reads a cumulative energy counter in joules. :func:`measure_energy` turns one into a
measured J/sample: idle power first, then the work in several windows, idle power x time subtracted.
Without a meter, wattless keeps its labelled analytical estimate (``energy.py``); the two are never mixed.

``$WATTLESS_ENERGY_METER`` (auto, rapl, nvml or none) picks the meter; ``none`` turns measuring off.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError

POWERCAP_ROOT = Path("/sys/class/powercap")
ENERGY_METER_ENV = "WATTLESS_ENERGY_METER"
METER_KINDS = ("auto", "rapl", "nvml", "none")
RAPL_STEP_J = 2.0 ** -14
"""One RAPL count on most Intel CPUs (energy status unit 2^-14 J = 61 µJ; AMD and some Xeons count 15.3 µJ).
The sysfs file is in µJ, but the value only moves in these steps, about once per millisecond."""
NVML_STEP_J = 1e-3
"""NVML's total-energy counter is in mJ."""
MIN_STEPS = 100
"""A window must span at least this many counter steps, so quantisation stays under about 1 %."""
WINDOW_S = 0.2
"""Target length (s) of one measuring window when the caller lets wattless choose the repeats."""
IDLE_S = 1.0
"""Default idle window (s) for the idle-power baseline."""

# AMD Zen CPUs (Linux >= 5.11) expose their RAPL counters under the same intel-rapl names; an "amd-rapl"
# zone is accepted too in case a kernel names it so. intel-rapl-mmio repeats the MSR package domain: skipped.
_PACKAGE_ZONE = re.compile(r"^(intel-rapl|amd-rapl):(\d+)$")


class Meter:
    """A cumulative energy counter. ``read()`` gives joules since the meter was created, corrected for
    counter wrap-around between reads; ``available`` is False (and ``reason`` says why) when it cannot read."""

    name = "none"
    device = "none"
    step_j = 0.0

    def __init__(self) -> None:
        self.available = False
        self.reason: str | None = "energy metering is off"
        self._lock = threading.Lock()
        self._total_j = 0.0

    def read(self) -> float:
        """Joules used since the meter was created (cumulative, wrap-corrected)."""
        if not self.available:
            raise ConfigError(f"the {self.name} energy meter is unavailable: {self.reason}")
        with self._lock:
            self._total_j += self._advance_j()
            return self._total_j

    def _advance_j(self) -> float:
        """Joules used since the previous call; subclasses read their counters here."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} available={self.available} reason={self.reason!r}>"


class NoMeter(Meter):
    """No hardware meter: energy is estimated, not measured."""

    def __init__(self, reason: str = "energy metering is off") -> None:
        super().__init__()
        self.reason = reason


class RaplMeter(Meter):
    """CPU package (and DRAM) energy from RAPL counters in Linux powercap sysfs, summed over sockets.

    Reads ``<root>/intel-rapl:N/energy_uj`` (µJ) for every ``package-N`` zone and its ``dram`` subzone, and
    adds ``max_energy_range_uj + 1`` whenever a counter wrapped between two reads. The counters cover the
    whole socket: other processes' work is counted too. Reads must come more often than one wrap period
    (minutes at full load); :class:`~wattless.measurement.footprint.Footprint` polls for long work.
    """

    name = "rapl"
    device = "cpu"
    step_j = RAPL_STEP_J

    def __init__(self, root: str | os.PathLike = POWERCAP_ROOT, *, include_dram: bool = True) -> None:
        super().__init__()
        self.root = Path(root)
        self.domains: list[str] = []
        self._files: list[tuple[Path, int]] = []  # (energy_uj path, max_energy_range_uj)
        self._last: list[int] = []
        try:
            zones = self._discover(include_dram)
            if not zones:
                self.reason = (f"no RAPL package zone (intel-rapl:N named package-N) under {self.root}; "
                               "the CPU or the kernel does not expose RAPL")
                return
            for label, zone in zones:
                energy = zone / "energy_uj"
                self._files.append((energy, _read_int(zone / "max_energy_range_uj")))
                self._last.append(_read_int(energy))
                self.domains.append(label)
        except FileNotFoundError as error:
            if self.root.exists():
                self.reason = f"a RAPL zone file is missing: {error.filename}"
            else:
                self.reason = (f"no RAPL counters: {self.root} does not exist (not Linux, or a VM or container "
                               "without powercap)")
            return
        except PermissionError as error:
            self.reason = (f"cannot read {error.filename or self.root}: permission denied (RAPL counters are "
                           "readable by root only since the 2020 PLATYPUS fix, CVE-2020-8694); run as root or "
                           f"`sudo chmod a+r {self.root}/intel-rapl:*/energy_uj`")
            return
        except (OSError, ValueError) as error:
            self.reason = f"cannot read the RAPL counters under {self.root}: {error}"
            return
        self.available, self.reason = True, None
        self.step_j = RAPL_STEP_J * len(self._files)

    def _discover(self, include_dram: bool) -> list[tuple[str, Path]]:
        """(label, zone folder) of every package zone and, if asked, its DRAM subzone, in socket order."""
        packages = []
        for entry in self.root.iterdir():
            match = _PACKAGE_ZONE.match(entry.name)
            if match and _read_text(entry / "name").startswith("package"):
                packages.append((int(match.group(2)), entry))
        zones = []
        for _, package in sorted(packages, key=lambda found: found[0]):
            name = _read_text(package / "name")
            zones.append((name, package))
            if include_dram:
                # subzones sit inside the package folder, and also beside it in /sys/class/powercap
                candidates = {p.resolve(): p for folder in (package, self.root)
                              for p in folder.glob(f"{package.name}:*") if p.is_dir()}
                for sub in sorted(candidates.values(), key=lambda p: p.name):
                    if _read_text(sub / "name") == "dram":
                        zones.append((f"{name}/dram", sub))
        return zones

    def _advance_j(self) -> float:
        used_uj = 0
        for index, (path, max_range) in enumerate(self._files):
            try:
                now = _read_int(path)
            except OSError as error:
                raise ConfigError(f"cannot read {path} any more: {error}") from None
            used_uj += wrapped_delta(self._last[index], now, max_range)
            self._last[index] = now
        return used_uj * 1e-6


class NvmlMeter(Meter):
    """Energy of every NVIDIA GPU from NVML's total-energy counter (mJ since the driver loaded; Volta or newer).

    Needs ``nvidia-ml-py`` (``import pynvml``); unavailable without it, without a GPU, or on older GPUs.
    """

    name = "nvml"
    device = "gpu"
    step_j = NVML_STEP_J

    def __init__(self) -> None:
        super().__init__()
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py is not installed; pip install 'wattless[gpu]' to read NVIDIA GPU energy"
            return
        self._nvml = pynvml
        nvml_error = getattr(pynvml, "NVMLError", Exception)
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nvml_error as error:
            self.reason = f"NVML cannot start ({error}); is the NVIDIA driver loaded?"
            return
        if not self._handles:
            self.reason = "no NVIDIA GPU found by NVML"
            return
        try:
            self._last = [int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]
        except nvml_error as error:
            self.reason = f"a GPU does not report its total energy ({error}); NVML needs Volta or newer"
            return
        self.available, self.reason = True, None
        self.step_j = NVML_STEP_J * len(self._handles)

    def _advance_j(self) -> float:
        used_mj = 0
        for index, handle in enumerate(self._handles):
            now = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            used_mj += wrapped_delta(self._last[index], now, 2 ** 64 - 1)
            self._last[index] = now
        return used_mj * 1e-3


def wrapped_delta(start: int, end: int, max_range: int) -> int:
    """Counter increase from ``start`` to ``end`` for a counter that wraps to 0 after ``max_range``."""
    return end - start if end >= start else end + max_range + 1 - start


def detect_meter(kind: str | None = None, *, root: str | os.PathLike = POWERCAP_ROOT,
                 devices: Sequence[str] = ("cpu",)) -> Meter:
    """The energy meter to use: ``kind`` ("auto", "rapl", "nvml" or "none"), else ``$WATTLESS_ENERGY_METER``,
    else "auto".

    "auto" takes the first available meter for ``devices`` ("cpu": RAPL, "gpu": NVML), else a
    :class:`NoMeter` named "none" whose ``reason`` says why each was unavailable. wattless runs models on
    the CPU, so ``devices`` defaults to ("cpu",): an idle GPU's energy says nothing about CPU work.

    Raises:
        ConfigError: ``kind`` is unknown, or a meter asked for by name is unavailable (with the reason).
    """
    kind = (kind or os.environ.get(ENERGY_METER_ENV) or "auto").strip().lower()
    if kind not in METER_KINDS:
        raise ConfigError(f"energy meter {kind!r} unknown; use one of {', '.join(METER_KINDS)} "
                          f"(argument or ${ENERGY_METER_ENV})")
    if kind == "none":
        return NoMeter(f"energy metering turned off ({ENERGY_METER_ENV}=none or kind='none')")
    builders: dict[str, Callable[[], Meter]] = {"rapl": lambda: RaplMeter(root), "nvml": NvmlMeter}
    if kind != "auto":
        meter = builders[kind]()
        if not meter.available:
            raise ConfigError(f"the {kind} energy meter is unavailable: {meter.reason}")
        return meter
    reasons = []
    for device, name in (("cpu", "rapl"), ("gpu", "nvml")):
        if device in devices:
            meter = builders[name]()
            if meter.available:
                return meter
            reasons.append(f"{name}: {meter.reason}")
    return NoMeter("; ".join(reasons) or "no device to meter")


def measure_energy(run: Callable[[], object], *, meter: Meter, repeats: int, samples_per_run: int,
                   windows: int = 5, idle_seconds: float = IDLE_S, warmup: int = 1,
                   clock: Callable[[], float] = time.perf_counter,
                   sleep: Callable[[float], None] = time.sleep) -> dict:
    """Measured energy per sample (J) of ``run()``, net of idle power.

    First the idle power: the meter over ``idle_seconds`` of sleep. Then ``warmup`` untimed calls and
    ``windows`` windows of ``repeats`` calls each; a window's net energy is its metered energy minus idle
    power x its wall time, divided by ``repeats x samples_per_run`` samples. ``clock`` (s) and ``sleep``
    are injectable for tests.

    Returns:
        ``{"value": median J/sample, "p25", "p75", "windows", "repeats", "idle_w": W, "window_s": median
        window time (s), "method": meter.name}``.

    Raises:
        ConfigError: the meter is unavailable, an option is out of range, or a window (or the idle window)
            spans fewer than ``MIN_STEPS`` counter steps, or the work's net energy is not above that:
            a figure that small would be counter noise, so raise ``repeats`` (or ``idle_seconds``).
    """
    if not meter.available:
        raise ConfigError(f"the {meter.name} energy meter is unavailable: {meter.reason}")
    for option, value, least in (("repeats", repeats, 1), ("samples_per_run", samples_per_run, 1),
                                 ("windows", windows, 1), ("warmup", warmup, 0)):
        if value < least:
            raise ConfigError(f"{option} must be at least {least}, got {value}")
    if idle_seconds <= 0:
        raise ConfigError(f"idle_seconds must be positive, got {idle_seconds}")
    floor_j = MIN_STEPS * meter.step_j
    start_j, start_s = meter.read(), clock()
    sleep(idle_seconds)
    idle_s, idle_j = clock() - start_s, meter.read() - start_j
    if idle_j < floor_j:
        raise ConfigError(f"the idle window used {idle_j:.3g} J, under {MIN_STEPS} steps of the {meter.name} "
                          f"counter ({floor_j:.3g} J); raise idle_seconds (now {idle_seconds:g} s)")
    idle_w = idle_j / idle_s
    for _ in range(warmup):
        run()
    per_sample, durations = [], []
    for _ in range(windows):
        start_j, start_s = meter.read(), clock()
        for _ in range(repeats):
            run()
        seconds, used_j = clock() - start_s, meter.read() - start_j
        net_j = used_j - idle_w * seconds
        if used_j < floor_j or net_j < floor_j:
            raise ConfigError(f"a window of {repeats} runs used {used_j:.3g} J, {net_j:.3g} J above idle power "
                              f"({idle_w:.3g} W): under {MIN_STEPS} steps of the {meter.name} counter "
                              f"({floor_j:.3g} J), so it cannot be measured; raise repeats")
        per_sample.append(net_j / (repeats * samples_per_run))
        durations.append(seconds)
    p25, median, p75 = np.percentile(per_sample, [25, 50, 75])
    return {"value": float(median), "p25": float(p25), "p75": float(p75), "windows": windows,
            "repeats": repeats, "idle_w": idle_w, "window_s": float(np.median(durations)), "method": meter.name}


def measure_runner_energy(runner, estimate: dict, *, batch: int, threads: int = 1, meter: Meter | None = None,
                          idle_seconds: float | None = None) -> dict:
    """A record's energy keys for a model loaded in an engine (:class:`~wattless.measurement.engines.Runner`),
    run on ``batch`` samples with ``threads`` threads.

    With an available CPU meter: ``{"energy_j_per_sample": measured (see :func:`measure_energy`, plus "batch",
    "engine"), "energy_estimate": estimate}``; without one, ``{"energy_j_per_sample": estimate}``.
    Repeats are chosen for windows of about :data:`WINDOW_S`; ``idle_seconds`` defaults to :data:`IDLE_S`.
    """
    meter = detect_meter() if meter is None else meter
    if not meter.available:
        return {"energy_j_per_sample": estimate}
    with runner.call(batch, threads) as run:
        return _record_energy(run, estimate, meter, batch, runner.engine, idle_seconds)


def _record_energy(run: Callable[[], object], estimate: dict, meter: Meter, batch: int, engine: str,
                   idle_seconds: float | None) -> dict:
    """Measure with enough repeats for a ~``WINDOW_S`` window; a refused measurement keeps the estimate,
    labelled with the meter's error."""
    run()
    start = time.perf_counter()
    for _ in range(3):
        run()
    per_call_s = max((time.perf_counter() - start) / 3, 1e-7)
    repeats = max(1, int(np.ceil(WINDOW_S / per_call_s)))
    try:
        measured = measure_energy(run, meter=meter, repeats=repeats, samples_per_run=batch,
                                  idle_seconds=IDLE_S if idle_seconds is None else idle_seconds)
    except ConfigError as error:
        return {"energy_j_per_sample": {**estimate, "meter": meter.name, "meter_error": str(error)}}
    return {"energy_j_per_sample": {**measured, "batch": batch, "engine": engine, "provenance": "measured"},
            "energy_estimate": estimate}


def _read_text(path: Path) -> str:
    with open(path) as file:
        return file.read().strip()


def _read_int(path: Path) -> int:
    return int(_read_text(path))
