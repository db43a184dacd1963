"""What every benchmark shares: medians of repeated timings and a ratio printed next to its reference.

On a machine shared with other work an absolute time says little; the time of a reference doing the
unavoidable part of the same work (parsing the same input with the standard library, encoding the same
texts with the bare model), measured in the same run, turns it into a ratio that means something.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Timing:
    """Medians over repeated runs: wall seconds, and CPU seconds of this process (all its threads)."""

    wall: float
    cpu: float


def median_seconds(fn: Callable[[], Any], runs: int) -> tuple[Timing, Any]:
    """The median wall and CPU time of `runs` calls of `fn`, and the last call's value.

    CPU time is the fairer number while other sessions share the cores: waiting for a core is not counted.
    """
    walls, cpus, value = [], [], None
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus)), value


def json_load_all(paths: Iterable[Path]) -> int:
    """The reference for import, repair and validate: `json.load` of every file; returns the files read."""
    count = 0
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
        count += 1
    return count


def print_ratio(work: str, now: Timing, reference: str, ref: Timing, target: float | None = None) -> float:
    """One line: the work's times, the reference's, their ratios and the target (of the CPU ratio, the
    fairer one on a shared machine); returns the CPU ratio."""
    ratio = now.cpu / ref.cpu
    verdict = "no target" if target is None else f"target <= {target:g}x: {'ok' if ratio <= target else 'MISSED'}"
    print(f"{work}: {now.wall:.2f} s wall, {now.cpu:.2f} s CPU | {reference}: {ref.wall:.3f} s wall, "
          f"{ref.cpu:.3f} s CPU | ratio {now.wall / ref.wall:.1f}x wall, {ratio:.1f}x CPU ({verdict})")
    return ratio


def print_machine() -> None:
    """The load the numbers were taken under (other sessions share the cores)."""
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
