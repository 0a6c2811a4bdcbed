"""The machine and software a benchmark ran with, as a JSON-ready dict."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import sys
from pathlib import Path

from .measure import cpu_count


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """CPU model and usable cores, total memory; what identifies a timing's machine."""
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu_model(), "cores": cpu_count(), "memory_gib": mem}


def environment(ffmpeg_version: str | None, torch_info: bool = True) -> dict:
    """Everything a reader needs to reproduce or weigh the numbers (no host names)."""
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in
                     ("vtoken", "torch", "av", "numpy", "constriction", "imageio-ffmpeg", "matplotlib")},
        "ffmpeg": ffmpeg_version,
        "gpu": None,
    }
    if torch_info:
        from ..device import gpu_info

        env["gpu"] = gpu_info()
    return env
