"""Training checkpoints without pickle: safetensors shards (each below a size limit, so they
come back from the GPU machine) plus a JSON manifest.

Any nested state (model and optimizer state_dicts, RNG states, counters) is flattened by
`flatten`: tensors go to the shards under a path-like name, everything else stays in JSON
with `{"__tensor__": name}` placeholders, and dict keys keep their type (optimizer state is
keyed by int). A tensor larger than the shard limit is split into flat parts.

Layout: RUN/checkpoints/step-00001234/{manifest.json, shard-00000.safetensors, ...},
written into a temporary folder and renamed, so a folder with a manifest is complete."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vtoken.errors import InputError

MANIFEST = "manifest.json"
FORMAT = "vtoken-train-checkpoint"
FORMAT_VERSION = 1
DEFAULT_SHARD_BYTES = 15 * 2**20  # the GPU machine returns files of at most 16 MB
_HEADER_RESERVE = 64 * 1024  # room for the safetensors JSON header inside the limit


# -- flatten / unflatten ------------------------------------------------------------------------
def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """JSON-ready skeleton of `obj`; its tensors are added to `tensors` by name."""
    if isinstance(obj, torch.Tensor):
        name = prefix or "root"
        if name in tensors:
            raise ValueError(f"duplicate tensor name {name}")
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint dict keys must be str or int, got {type(k).__name__}")
            items.append([k, flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k))])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint (at {prefix or 'root'})")


def unflatten(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__dict__" in skel:
            return {k: unflatten(v, tensors) for k, v in skel["__dict__"]}
        if "__tuple__" in skel:
            return tuple(unflatten(v, tensors) for v in skel["__tuple__"])
        raise ValueError(f"unexpected checkpoint node {sorted(skel)}")
    if isinstance(skel, list):
        return [unflatten(v, tensors) for v in skel]
    return skel


# -- sharding ------------------------------------------------------------------------------------
def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def plan_shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """Greedy packing in name order. Returns (shards, splits) where splits maps a tensor name
    to {"shape", "dtype", "parts": [part names]} for tensors cut into flat parts."""
    budget = max_bytes - _HEADER_RESERVE
    if budget <= 0:
        raise ValueError(f"shard limit {max_bytes} bytes is too small; use at least {2 * _HEADER_RESERVE}")
    pieces: list[tuple[str, torch.Tensor]] = []
    splits: dict[str, dict] = {}
    for name in sorted(tensors):
        t = tensors[name]
        if _nbytes(t) <= budget:
            pieces.append((name, t))
            continue
        flat = t.reshape(-1)
        per = max(1, budget // t.element_size())
        parts = []
        for i, start in enumerate(range(0, flat.numel(), per)):
            pname = f"{name}@part{i}"
            parts.append(pname)
            pieces.append((pname, flat[start : start + per].clone()))
        splits[name] = {"shape": list(t.shape), "parts": parts}
    shards: list[dict[str, torch.Tensor]] = []
    cur: dict[str, torch.Tensor] = {}
    size = 0
    for name, t in pieces:
        n = _nbytes(t)
        if cur and size + n > budget:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = t
        size += n
    if cur or not shards:
        shards.append(cur)
    return shards, splits


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    state: dict[str, Any],
    *,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    keep_last: int = 3,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write RUN/checkpoints/step-XXXXXXXX atomically; keep the newest `keep_last`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    shards, splits = plan_shards(tensors, max_shard_bytes)
    files = []
    for i, shard in enumerate(shards):
        fname = f"shard-{i:05d}.safetensors"
        save_file(shard, str(tmp / fname))
        size = (tmp / fname).stat().st_size
        if size > max_shard_bytes:  # the reserve is generous; this is a bug guard
            raise RuntimeError(f"shard {fname} is {size} bytes, above the limit {max_shard_bytes}")
        files.append({"file": fname, "bytes": size, "tensors": sorted(shard)})
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": step,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "max_shard_bytes": max_shard_bytes,
        "shards": files,
        "splits": splits,
        "state": skeleton,
        "extra": extra or {},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (folders with a manifest), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[int, dict, dict]:
    """(step, state, extra) from a checkpoint folder (or a run folder: its latest)."""
    p = Path(path)
    if not (p / MANIFEST).is_file():
        latest = latest_checkpoint(p)
        if latest is None:
            raise InputError(f"no checkpoint in {path}; train first or pass a step-XXXXXXXX folder")
        p = latest
    manifest = json.loads((p / MANIFEST).read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise InputError(f"{p} is not a version-{FORMAT_VERSION} vtoken training checkpoint")
    tensors: dict[str, torch.Tensor] = {}
    for entry in manifest["shards"]:
        tensors.update(load_file(str(p / entry["file"]), device=str(map_location)))
    for name, info in manifest["splits"].items():
        parts = [tensors.pop(n) for n in info["parts"]]
        tensors[name] = torch.cat(parts).reshape(info["shape"])
    return manifest["step"], unflatten(manifest["state"], tensors), manifest.get("extra", {})
