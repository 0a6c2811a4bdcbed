"""The driver: sources -> engine -> shards, state and manifest (tokenize); files -> .mvt (encode).

The driver alone writes (shards, state, manifest), while the engine's workers decode and run
the model, so writing overlaps the rest. Nothing here prints: `on_source` reports progress.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import UsageError
from . import manifest as mf
from .shards import GroupWriter
from .sources import expand
from .work import EncodeJob, TokenizeJob

DEFAULT_CLIP_FRAMES = 17
DEFAULT_MAX_SIDE = 640
DEFAULT_SOURCES_PER_SHARD = 64
DEFAULT_SHARD_MB = 256
MAX_PLANES = 31  # shards store tokens as int32


@dataclass
class CorpusResult:
    out: str
    engine: str
    workers: int
    seconds: float
    totals: dict
    failed: list[dict] = field(default_factory=list)   # {"path", "error"}
    resumed_groups: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {"out": self.out, "engine": self.engine, "workers": self.workers, "seconds": self.seconds,
                "totals": self.totals, "failed": self.failed, "resumed_groups": self.resumed_groups}


def make_engine(ray: str | None, workers: int, threads: int | None = None, progress: bool = False):
    from .engine import LocalEngine, RayEngine

    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if threads is None:
        # Inline (one local worker): leave torch's threads to the caller.
        threads = 0 if (workers == 1 and not ray) else max(1, (os.cpu_count() or 1) // workers)
    if ray:
        return RayEngine(ray, workers, threads, progress=progress), threads
    return LocalEngine(workers), threads


def _model(model, device: str):
    """(JSON path, loaded model) of the model the workers will load; the driver checks it once."""
    import vtoken
    from vtoken.models import resolve_model

    path = resolve_model(model).resolve()
    return str(path), vtoken.load_model(path, device="cpu")


def tokenize_corpus(
    sources,
    out,
    *,
    clip_frames: int = DEFAULT_CLIP_FRAMES,
    planes: int | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    model=None,
    device: str = "auto",
    workers: int = 1,
    threads: int | None = None,
    ray: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    sources_per_shard: int = DEFAULT_SOURCES_PER_SHARD,
    shard_mb: float = DEFAULT_SHARD_MB,
    engine=None,
    on_source: Callable[[dict], None] | None = None,
) -> CorpusResult:
    """Tokenize every clip of every source into Parquet shards under `out` (see
    vtoken.corpus). `ray`: None (local processes), "auto" or a cluster address. `engine`: an
    already started engine (shared between calls, e.g. by tests). Returns a CorpusResult;
    `result.ok` is False when a source failed."""
    started = time.perf_counter()
    if not sources:
        raise UsageError("give at least one source file or folder")
    from ..validate import integer, plane_count

    integer("workers", workers, 1)
    integer("clip frames", clip_frames, 1)
    plane_count("planes", planes, optional=True)
    if sources_per_shard < 1 or not shard_mb > 0:
        raise UsageError("sources per shard must be >= 1 and shard size positive")
    if max_side is not None and max_side < 1:
        raise UsageError(f"max side must be positive, got {max_side}")
    model_path, net = _model(model, device)
    cfg, ident = net.config, net.identity
    tf = cfg.temporal_factor
    if clip_frames < 1 or (clip_frames - 1) % tf:
        raise UsageError(f"clip frames must be 1 + {tf}n for this model (1, {1 + tf}, {1 + 2 * tf}, ...), got {clip_frames}")
    keep = cfg.token_bits if planes is None else planes
    top = min(cfg.bits, MAX_PLANES)
    if not 1 <= keep <= top:
        raise UsageError(f"planes must be from 1 to {top} (tokens are stored as int32), got {planes}")
    out = Path(out)
    params = {"clip_frames": clip_frames, "planes": keep, "max_side": max_side, "model_name": ident.name,
              "model_sha256": ident.sha256, "sources_per_shard": sources_per_shard, "shard_mb": shard_mb,
              "schema_version": 1}
    found, skipped = expand(sources, exclude=out)
    mf.prepare(out, params, resume, overwrite)

    groups = [found[i:i + sources_per_shard] for i in range(0, len(found), sources_per_shard)]
    states: dict[int, dict] = {}
    if resume:
        for g, members in enumerate(groups):
            entry = mf.complete_group(out, g, members)
            if entry is not None:
                states[g] = entry
    resumed = len(states)
    todo = [s for g, members in enumerate(groups) if g not in states for s in members]
    group_of = {s.index: s.index // sources_per_shard for s in found}
    metadata = {"vtoken": __version__, "format": "vtoken-corpus-shard", "schema_version": "1"}
    open_groups = {g: _Group(out, g, groups[g], int(shard_mb * 1024 * 1024), metadata)
                   for g in range(len(groups)) if g not in states}

    own_engine = engine is None
    if own_engine:
        engine, threads = make_engine(ray, workers, threads)
    threads = threads or 0
    job = TokenizeJob(model_path, ident.sha256, keep, clip_frames, max_side, device, threads)
    try:
        for index, records, error in engine.tokenize(job, todo):
            g = group_of[index]
            if on_source is not None:
                on_source({"path": found[index].path, "error": error, "clips": len(records)})
            if open_groups[g].add(index, records, error):
                states[g] = open_groups.pop(g).finish()
    finally:
        for group in open_groups.values():
            group.abort()
        if own_engine:
            engine.close()
    seconds = time.perf_counter() - started
    run = {"engine": engine.name, "workers": workers, "threads_per_worker": threads, "device": device,
           "seconds": round(seconds, 3), "resumed_groups": resumed}
    manifest = mf.write_manifest(out, params, list(states.values()), skipped, run)
    failed = [{"path": s["path"], "error": s["error"]} for s in manifest["sources"] if s["status"] == "failed"]
    return CorpusResult(str(out), engine.name, workers, seconds, manifest["totals"], failed, resumed)


class _Group:
    """One group in flight: results arrive in any order and are written in source order."""

    def __init__(self, out: Path, g: int, members, shard_bytes: int, metadata: dict):
        self.out, self.g, self.members = out, g, members
        self.writer = GroupWriter(out, g, shard_bytes, metadata)
        self.waiting: dict[int, tuple] = {}
        self.entries: list[dict] = []

    def add(self, index: int, records: list, error: str | None) -> bool:
        """Take a source's result; True when the group has all of them."""
        self.waiting[index] = (records, error)
        while len(self.entries) < len(self.members) and self.members[len(self.entries)].index in self.waiting:
            source = self.members[len(self.entries)]
            recs, err = self.waiting.pop(source.index)
            entry = {**source.to_dict(), "status": "failed" if err else "done", "error": err,
                     "sha256": None, "clips": 0, "frames": 0, "tokens": 0}
            if not err:
                self.writer.add(recs)
                entry.update(sha256=recs[0]["source_sha256"], clips=len(recs),
                             frames=sum(r["frame_count"] for r in recs),
                             tokens=sum(int(r["tokens"].size) for r in recs))
            self.entries.append(entry)
        return len(self.entries) == len(self.members)

    def finish(self) -> dict:
        return mf.write_group_state(self.out, self.g, self.entries, self.writer.close())

    def abort(self) -> None:
        self.writer.abort()


def encode_corpus(
    paths,
    out_dir,
    *,
    model=None,
    device: str = "auto",
    workers: int = 1,
    threads: int | None = None,
    ray: str | None = None,
    overwrite: bool = False,
    engine=None,
    **options,
) -> tuple[list[dict], list[dict]]:
    """`vtoken encode SRC... -d OUT_DIR` on an engine: each input to OUT_DIR/NAME.mvt.
    `options` are vtoken.encode's (planes, quality, bpp, chunk_frames, key_interval, precision).
    Returns (results in input order, failures [{"input", "error"}])."""
    from ..fsutil import check_distinct_outputs, check_output_path

    out = Path(out_dir)
    pairs = {i: (str(p), str(out / (Path(p).stem + ".mvt"))) for i, p in enumerate(paths)}
    # a.mp4 and a.mov: workers must not race for one a.mvt (refused before anything is made)
    check_distinct_outputs(dst for _, dst in pairs.values())
    out.mkdir(parents=True, exist_ok=True)
    refused = {}
    for i, (_, dst) in pairs.items():
        try:
            check_output_path(dst, overwrite)
        except Exception as exc:  # noqa: BLE001 - reported as this input's failure
            refused[i] = str(exc)
    model_path, net = _model(model, device)
    own_engine = engine is None
    if own_engine:
        engine, threads = make_engine(ray, workers, threads)
    job = EncodeJob(model_path, net.identity.sha256, device, threads or 0, {**options, "overwrite": overwrite})
    done: dict[int, tuple] = {i: (None, e) for i, e in refused.items()}
    try:
        for index, result, error in engine.encode(job, {i: p for i, p in pairs.items() if i not in refused}):
            done[index] = (result, error)
    finally:
        if own_engine:
            engine.close()
    results = [done[i][0] for i in sorted(done) if done[i][0] is not None]
    failures = [{"input": pairs[i][0], "error": done[i][1]} for i in sorted(done) if done[i][1]]
    return results, failures
