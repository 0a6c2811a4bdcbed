"""The vtoken points of a bench run, kept in its --out folder as each finishes, so that a run
stopped part way (a searched encode takes minutes per point on a CPU) goes on where it
stopped with `vtoken bench --resume`. The log holds each point's record and, for the points
a side-by-side picture may show, the middle frame it decoded. It is a run's scratch: the
finished run's results replace it.

A log is reused only by a run with the same settings (model, device, metrics, frames, size,
hold, search, chunking); another run refuses to resume from it rather than mix its points."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import UsageError

LOG_NAME = "points.partial.jsonl"
FRAMES_NAME = "points.partial"


def point_key(reference_sha256: str, temporal_factor, planes, target) -> str:
    """A point's name within a run: its clip (by the reference's hash), grid, planes and target."""
    blob = json.dumps([reference_sha256, temporal_factor, planes, target])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class PointLog:
    """The points logged in `out_dir` for a run whose settings are `run` (a JSON-able dict).
    resume=False starts a new log (dropping an older one); resume=True keeps the points of a log
    with the same settings and refuses one with others."""

    def __init__(self, out_dir: str | Path, run: dict, resume: bool):
        self.path = Path(out_dir) / LOG_NAME
        self.frames = Path(out_dir) / FRAMES_NAME
        self.header = {"run": run}
        self.done: dict[str, dict] = {}
        if resume and self.path.is_file():
            self._read()
        else:
            self.clear()
            self.frames.mkdir(parents=True)
            self._append(self.header)

    def _read(self) -> None:
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if header != json.loads(json.dumps(self.header)):
            raise UsageError(f"{self.path} holds points of a run with other settings; run without --resume "
                             "to start again, or give another --out")
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short when the run stopped
                continue
            self.done[entry["key"]] = entry["record"]
        self.frames.mkdir(exist_ok=True)

    def _append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def get(self, key: str) -> dict | None:
        """The logged record of point `key` (marked "resumed"), or None."""
        rec = self.done.get(key)
        return None if rec is None else {**rec, "resumed": True}

    def frame(self, key: str) -> np.ndarray | None:
        p = self.frames / f"{key}.npy"
        return np.load(p, allow_pickle=False) if p.is_file() else None

    def put(self, key: str, record: dict, frame: np.ndarray | None = None) -> None:
        """Log a finished point (its frame first, so a logged point always has it)."""
        if frame is not None:
            tmp = self.frames / f"{key}.part.npy"
            np.save(tmp, np.ascontiguousarray(frame), allow_pickle=False)
            tmp.replace(self.frames / f"{key}.npy")
        self._append({"key": key, "record": record})
        self.done[key] = record

    def clear(self) -> None:
        """Drop the log (the run finished, or a new one starts)."""
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.frames, ignore_errors=True)
