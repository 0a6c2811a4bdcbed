"""The state of a corpus folder: what a run was asked to do, which groups are complete, and
the manifest that lists every source and the totals.

    OUT/state/params.json          the settings and model; a resumed run must match them
    OUT/state/group-GGGGGG.json    one per complete group: its sources (done / failed) and shards
    OUT/manifest.json              written at the end of every run, from the group files

A group file is written (atomically) only after the group's shards are in place, so it
proves they are complete; --resume skips exactly the groups whose file matches the current
sources (path, size, mtime) and whose shards are all present with the recorded sizes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import OutputError, UsageError
from ..fsutil import atomic_path
from .shards import SHARD_RE

MANIFEST_VERSION = 1


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _ours(out: Path) -> list[Path]:
    """Entries in OUT that a run writes (and only those)."""
    found = []
    for p in out.iterdir():
        if SHARD_RE.match(p.name) or p.name in ("manifest.json", "state") or \
                (p.name.startswith(".") and p.name.endswith(".part")):
            found.append(p)
    return found


def prepare(out: Path, params: dict, resume: bool, overwrite: bool) -> None:
    """Create OUT/state, or check a previous run's settings when resuming. Leftover
    temporary files of a killed run are removed."""
    out.mkdir(parents=True, exist_ok=True)
    state = out / "state"
    previous = _read_json(state / "params.json")
    if resume:
        if previous is not None and previous != params:
            changed = sorted(k for k in set(params) | set(previous) if params.get(k) != previous.get(k))
            raise UsageError(f"{out} was made with other settings ({', '.join(changed)}); use another --out, "
                             "or -y to start over")
    elif _ours(out):
        if not overwrite:
            raise OutputError(f"{out} holds a previous run; pass --resume to continue it or -y to start over")
        for p in _ours(out):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in out.glob(".*.part"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    state.mkdir(exist_ok=True)
    for p in state.glob(".*.part"):
        p.unlink(missing_ok=True)
    _write_json(state / "params.json", params)


def group_path(out: Path, group: int) -> Path:
    return out / "state" / f"group-{group:06d}.json"


def _same_sources(entry: dict, sources) -> bool:
    have = [(s["path"], s["size"], s["mtime_ns"]) for s in entry.get("sources", [])]
    return have == [(s.path, s.size, s.mtime_ns) for s in sources]


def complete_group(out: Path, group: int, sources) -> dict | None:
    """The group's state when it is complete and still matches `sources`, else None."""
    entry = _read_json(group_path(out, group))
    if entry is None or not _same_sources(entry, sources):
        return None
    for shard in entry.get("shards", []):
        try:
            if os.path.getsize(out / shard["name"]) != shard["bytes"]:
                return None
        except OSError:
            return None
    return entry


def write_group_state(out: Path, group: int, sources: list[dict], shards: list[dict]) -> dict:
    entry = {"group": group, "sources": sources, "shards": shards}
    _write_json(group_path(out, group), entry)
    return entry


def write_manifest(out: Path, params: dict, groups: list[dict], skipped: list[dict], run: dict) -> dict:
    """manifest.json from the group states (in group order); stale shards (from a run over
    other sources) are removed so the folder holds exactly what the manifest lists."""
    sources, shards = [], []
    for entry in sorted(groups, key=lambda e: e["group"]):
        sources.extend(entry["sources"])
        shards.extend(entry["shards"])
    listed = {s["name"] for s in shards}
    for p in out.iterdir():
        if SHARD_RE.match(p.name) and p.name not in listed:
            p.unlink()
    for p in (out / "state").glob("group-*.json"):
        if int(p.stem.split("-")[1]) not in {e["group"] for e in groups}:
            p.unlink()
    done = [s for s in sources if s["status"] == "done"]
    totals = {
        "sources": len(sources) + len(skipped),
        "done": len(done),
        "failed": sum(s["status"] == "failed" for s in sources),
        "skipped": len(skipped),
        "records": sum(s["clips"] for s in done),
        "frames": sum(s["frames"] for s in done),
        "tokens": sum(s["tokens"] for s in done),
        "shards": len(shards),
        "shard_bytes": sum(s["bytes"] for s in shards),
    }
    manifest = {"format": "vtoken-corpus", "version": MANIFEST_VERSION, "params": params, "totals": totals,
                "shards": shards, "sources": sources + [{**s, "status": "skipped"} for s in skipped], "run": run}
    _write_json(out / "manifest.json", manifest)
    return manifest
