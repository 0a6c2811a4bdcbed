"""Finding the static ffmpeg and running it with wall-clock time and the child's peak RSS."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import VtokenError


class FfmpegError(VtokenError):
    """ffmpeg is missing or one of its runs failed."""

    exit_code = 1


def find_ffmpeg() -> str | None:
    """The static ffmpeg shipped by imageio-ffmpeg (has libx265, libvvenc, libsvtav1), or
    None. The system ffmpeg is not used: its encoders and versions vary between machines."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None
    return exe if exe and Path(exe).exists() else None


@functools.lru_cache(maxsize=8)
def ffmpeg_version(exe: str) -> str:
    """'n9.0.2-17-g2a571b6068-20260930' style version string of that binary."""
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"ffmpeg version (\S+)", out)
    return m.group(1) if m else "unknown"


@dataclass
class Run:
    seconds: float        # wall clock of the whole process
    max_rss_kib: int      # peak resident set of that process (ru_maxrss from wait4)
    stderr: str
    cpu_seconds: float = 0.0  # user + system CPU time: what wall clock would be alone on the cores


# A small launcher that forks ffmpeg and reports its wall clock and peak RSS. It exists because
# a child forked from this (large, torch-loaded) process inherits the parent's RSS high-water
# mark in ru_maxrss, and keeps it across exec; a grandchild forked from a fresh, small
# interpreter does not (its floor is the launcher's ~10 MiB).
_LAUNCHER = """
import json, os, sys, time
out, nice, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        if nice:
            os.nice(nice)
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime], f)
"""


def run_timed(cmd: list[str], cwd: str | Path | None = None, nice: int = 0) -> Run:
    """Run one process to completion and measure its wall clock and peak RSS (through
    _LAUNCHER). stdout is discarded (ffmpeg writes its outputs to files); stderr is kept
    for the error message."""
    base = Path(cwd or ".") / f".run-{os.getpid()}-{time.monotonic_ns()}"
    err_path, res_path = base.with_suffix(".stderr"), base.with_suffix(".json")
    try:
        with open(err_path, "w+b") as err:
            subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(res_path), str(int(nice)), *cmd],
                           cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False)
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace")
        try:
            seconds, maxrss, code, cpu = json.loads(res_path.read_text())
        except (OSError, ValueError):
            seconds, maxrss, code, cpu = 0.0, 0, -1, 0.0
    finally:
        err_path.unlink(missing_ok=True)
        res_path.unlink(missing_ok=True)
    if code != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise FfmpegError(f"ffmpeg failed (exit {code}): {tail or 'no message'}; command: {' '.join(cmd)}")
    return Run(seconds=float(seconds), max_rss_kib=int(maxrss), stderr=stderr, cpu_seconds=float(cpu))
