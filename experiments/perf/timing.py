"""Timing and record helpers shared by the latency and efficiency benchmarks.

Protocol (paper App. B gives only "averaged over 100 trials" on one GPU, so the rest
is ours): every callable being compared runs ``warmup`` untimed rounds, then
``trials`` timed rounds; each round calls every callable once, in a fresh random
order (:func:`interleave`). Slow drift of a shared or thermally throttled machine
therefore hits all of them alike, and each method is compared with the base on
paired per-round ratios (:func:`paired_ratio`). On CUDA a call is timed with CUDA
events after a ``synchronize`` (:func:`time_call`); on CPU with ``perf_counter``.

Settings are checked in :mod:`experiments.perf.schema`, models built in
:mod:`experiments.perf.models`; this module times, summarises and writes records.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import logging
import math
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.core.records import SCHEMA_VERSION, provenance, write_atomic
from experiments.core.schema import ConfigError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# -- devices ---------------------------------------------------------------------------


def setup(s: Any) -> tuple[torch.device, torch.dtype]:
    """Device, dtype and CPU threads of validated settings ``s``
    (:mod:`experiments.perf.schema`), made current: ``cuda:N`` becomes the current device,
    so that CUDA events and peak-memory stats refer to it."""
    device, dtype = torch.device(s.device), DTYPES[s.dtype]
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if s.threads:
        torch.set_num_threads(s.threads)
    return device, dtype


def share_weights_copy(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` whose parameters are the original's (same tensors).

    Methods that wrap modules or add parameters can then be applied to many copies of
    one base model for the memory of one; callers must not change shared weights in
    place (merging LoRA does: give the merged layers their own W0 first).
    """
    memo = {id(p): p for p in model.parameters()}
    return copy.deepcopy(model, memo)


def settings_hash(settings: Mapping[str, Any]) -> str:
    """8 hex digits identifying a settings dict (record file names)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def hardware(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on: CPU or GPU name, threads, torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": str(device),
        "name": gpu or cpu,
        "cpu": cpu,
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
    }


# -- timing ----------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work; no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one ``fn()`` in milliseconds.

    CUDA: events recorded around the call after a ``synchronize`` (so earlier work is
    not counted), then waits for the end event. CPU: ``time.perf_counter``.
    """
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleave(
    fns: Mapping[str, Callable[[], Any]],
    trials: int,
    warmup: int,
    device: torch.device,
    seed: int = 0,
    timer: Callable[[Callable[[], Any], torch.device], float] = time_call,
) -> dict[str, list[float]]:
    """Time several callables round-robin: ``warmup`` untimed rounds, ``trials`` timed.

    Each round calls every callable once in a new random order (seeded), so no method
    always follows the same neighbour and drift over the run hits all of them alike.

    Args:
        fns: name -> zero-argument callable (a forward pass, a training step ...).
        trials: timed rounds, ≥ 1.
        warmup: untimed rounds first (allocator, kernel selection, caches), ≥ 0.
        device: where the callables run (CUDA timing needs it).
        seed: seed of the per-round orders.
        timer: ``(fn, device) -> ms``; tests replace it.

    Returns:
        name -> ``trials`` times in ms; element t of every list is from round t.
    """
    names = list(fns)
    rng = random.Random(seed)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(trials):
        order = rng.sample(names, len(names))
        gc.collect()
        gc.disable()  # a collection inside a timed call would land on one method only
        try:
            for name in order:
                times[name].append(timer(fns[name], device))
        finally:
            gc.enable()
    return times


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings, ms.

    Attributes:
        mean, std: sample mean and standard deviation (std 0 for one sample).
        median: median.
        min: fastest sample (the least disturbed by other processes on a shared CPU).
        n: number of samples.
    """

    mean: float
    std: float
    median: float
    min: float
    n: int

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stats:
        """Raises ValueError on no samples."""
        xs = list(samples)
        if not xs:
            raise ValueError("no samples")
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return cls(statistics.fmean(xs), std, statistics.median(xs), min(xs), len(xs))

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def fmt(self, digits: int = 1) -> str:
        """``mean±std`` as the paper prints it, e.g. ``1449.4±0.8``."""
        return f"{self.mean:.{digits}f}±{self.std:.{digits}f}"


def compare(
    fns: Mapping[str, Callable[[], Any]],
    trials: int,
    warmup: int,
    device: torch.device,
    seed: int,
    reference: str,
    timer: Callable[[Callable[[], Any], torch.device], float] | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`interleave` ``fns``, then per name its ``times_ms``, ``stats``
    (:meth:`Stats.as_dict`) and ``ratio`` (:func:`paired_ratio` against ``reference``)."""
    times = interleave(fns, trials, warmup, device, seed=seed, timer=timer or time_call)
    return {
        name: {
            "times_ms": xs,
            "stats": Stats.of(xs).as_dict(),
            "ratio": paired_ratio(xs, times[reference]),
        }
        for name, xs in times.items()
    }


def paired_ratio(num: list[float], den: list[float]) -> tuple[float, float]:
    """Median of the per-round ratios num[t] / den[t], and its standard error.

    The median resists a round in which a neighbour process slowed one call; on a
    quiet GPU it equals the ratio of the means. The standard error uses the normal
    approximation 1.2533·std/√n (0 for one round).

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(num) != len(den) or not num:
        raise ValueError(f"need equal, non-empty paired samples; got {len(num)} and {len(den)}")
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    se = 1.2533 * statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else 0.0
    return statistics.median(ratios), se


# -- records ---------------------------------------------------------------------------


def perf_record(experiment: str, s: Any, device: torch.device, notes: str | None,
                **results: Any) -> dict[str, Any]:  # fmt: skip
    """A perf job's record: identity from its settings ``s`` (a dataclass of
    :mod:`experiments.perf.schema`; ``s.record_settings()``), then results.

    The run id names the output and hashes every setting, so a rerun with the same
    settings replaces its record.
    """
    settings = s.record_settings()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{s.name}-{s.preset}-{device.type}-{s.dtype}-{settings_hash(settings)}",
        "experiment": experiment,
        "status": "ok",
        "task": None,
        "settings": settings,
        **results,
        "hardware": hardware(device),
        "provenance": provenance(),
        "notes": notes,
    }


def save_record(record: dict[str, Any], results_dir: Path) -> Path:
    """Write ``results_dir/runs/<experiment>/<run_id>.json``; returns its path."""
    path = results_dir / "runs" / record["experiment"] / f"{record['run_id']}.json"
    write_atomic(path, record)
    return path


def publish(record: dict[str, Any], results_dir: Path) -> list[Path]:
    """Save ``record`` (:func:`save_record`), then build its table as ``make tables`` does:
    ``python -m experiments.tables --experiment <its experiment>`` in a child process, so
    that the jobs never import the table code (experiments/report). Returns the paths of
    the table named after the record (``settings.name``), then the record's.

    Raises:
        RuntimeError: the table did not build (the record is saved; its warnings and
            traceback are on stderr above).
    """
    run_path = save_record(record, results_dir)
    cmd = [sys.executable, "-m", "experiments.tables", "--results-dir", str(results_dir),
           "--experiment", record["experiment"]]  # fmt: skip
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{run_path} is saved but its table did not build: "
                           f"`{' '.join(cmd[1:])}` exited {done.returncode}")  # fmt: skip
    name = record["settings"]["name"]  # the folder's other tables are rebuilt as they were
    tables = [Path(line) for line in done.stdout.splitlines() if Path(line).stem == name]
    return [*tables, run_path]


def run_cli(
    run: Callable[[Any], tuple[dict[str, Any], list[Path]]], cfg: Any, log: logging.Logger
) -> None:
    """A perf job's command line: ``run(cfg)``, then log each target and print each path.

    A bad setting (:class:`ConfigError`) exits with one ``error: ...`` line, no traceback.
    """
    try:
        record, paths = run(cfg)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    for t in record["targets"]:
        where = f" ({t['where']})" if t.get("where") else ""
        log.info("target %s%s: %s -> %s", t["target"], where, t["figure"], t["met"])
    for path in paths:
        print(path)
