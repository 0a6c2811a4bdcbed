"""Reading token shards (written by `vtoken tokenize`): a torch IterableDataset for training
loops, plain readers, and a record back to frames.

    from vtoken.data import TokenShards
    loader = torch.utils.data.DataLoader(TokenShards("tokens/"), batch_size=None, num_workers=2)
    for record in loader:            # dict: tokens (torch int64 [T', H', W']), source, first_frame, ...
        ...

The work is split by Parquet row group (64 records): under DDP (torch.distributed
initialised, or RANK / WORLD_SIZE set) and DataLoader workers, reader r of R takes row groups
r, r + R, r + 2R, ... of the shards in name order, so every record is read exactly once per
epoch. `shuffle=True` permutes the row groups and the records inside each, from
`seed + epoch` (call `set_epoch`), identically on every rank.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.utils.data
from torch.utils.data import IterableDataset

from .errors import InputError, UsageError


def _pq():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading token shards needs pyarrow: pip install 'vtoken[ray]'") from None
    return pq


def shard_paths(root) -> list[Path]:
    """The shards of a corpus folder (those its manifest lists, else every shard-*.parquet),
    or a single shard file."""
    from .corpus.shards import SHARD_RE

    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such shard file or folder")
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            names = [s["name"] for s in json.loads(manifest.read_text())["shards"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{manifest} is not a vtoken corpus manifest: {exc}") from None
        return [root / n for n in names]
    return sorted(p for p in root.iterdir() if SHARD_RE.match(p.name))


def _open(path: Path):
    try:
        return _pq().ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid (not Parquet, damaged) is a ValueError
        raise InputError(f"{path}: cannot read the shard: {exc}") from None


def _rows(table) -> Iterator[dict]:
    from .corpus.records import from_row

    for row in table.to_pylist():
        yield from_row(row)


def iter_records(root) -> Iterator[dict]:
    """Every record of a corpus folder or shard, in shard order (tokens int64 [T', H', W'])."""
    for path in shard_paths(root):
        yield from _rows(_open(path).read())


def find_record(root, *, row: int | None = None, source: str | None = None, clip: int = 0) -> dict:
    """One record: the `row`-th (0-based, across the shards in order), or clip `clip` of the
    source whose path is or ends with `source`."""
    if (row is None) == (source is None):
        raise UsageError("give a row number or a source (with its clip index)")
    if row is not None and row < 0:
        raise UsageError(f"row must be >= 0, got {row}")
    n = 0
    for path in shard_paths(root):
        f = _open(path)
        if row is not None:
            if row < n + f.metadata.num_rows:
                table = f.read().slice(row - n, 1)
                return next(_rows(table))
            n += f.metadata.num_rows
            continue
        for record in _rows(f.read()):
            if record["clip_index"] == clip and (record["source"] == source or
                                                 record["source"].endswith(os.sep + source.lstrip(os.sep))):
                return record
    what = f"row {row}" if row is not None else f"clip {clip} of {source}"
    raise InputError(f"{root} has no {what}")


def detokenize_record(record: dict, *, model=None, device: str = "auto") -> np.ndarray:
    """Frames of a record: uint8 [frame_count, height, width, 3], i.e. vtoken.detokenize of its
    tokens cropped to the clip's frames and size. The model is the one the record names
    (found by name and sha256) unless given; a different one is refused."""
    import vtoken

    from .errors import ModelError

    if model is None or isinstance(model, (str, os.PathLike)):
        from .models import load_model, load_model_by_identity

        from .api import resolve_device

        dev = resolve_device(device)
        net = load_model_by_identity(record["model_name"], record["model_sha256"], device=dev) if model is None \
            else load_model(model, device=dev)
    else:
        net = model
    if net.identity is None or net.identity.sha256 != record["model_sha256"]:
        raise ModelError(f"this record needs model {record['model_name']} (sha256 {record['model_sha256'][:16]}...)")
    frames = vtoken.detokenize(record["tokens"], model=net, planes=record["planes"], device=device)
    return frames[: record["frame_count"], : record["height"], : record["width"]]


def _dist() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class TokenShards(IterableDataset):
    """A torch IterableDataset over the records of a corpus folder (see the module doc).

    Each item is a dict: "tokens" as a torch int64 tensor [T', H', W'] and the other columns
    as Python values. `rank` / `world_size` default to torch.distributed's (or RANK /
    WORLD_SIZE) when the dataset is made: make it after init_process_group. Use `batch_size=None` or your own collate_fn: token grids differ in shape."""

    def __init__(self, root, *, shuffle: bool = False, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        self.paths = shard_paths(root)
        self.units = [(p, g) for p in self.paths for g in range(_open(p).metadata.num_row_groups)]
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        # Read here, in the rank's own process: DataLoader workers do not see its process group.
        dist_rank, dist_world = _dist()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise UsageError(f"rank {self.rank} is not in a world of {self.world_size}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _reader(self) -> tuple[int, int]:
        """(this reader's number, number of readers) over DDP ranks x loader workers."""
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * nw + wid, self.world_size * nw

    def __iter__(self):
        from .corpus.records import from_row

        units = list(enumerate(self.units))
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(len(units))
            units = [units[i] for i in order]
        me, total = self._reader()
        for k, (i, (path, group)) in enumerate(units):
            if k % total != me:
                continue
            rows = _open(path).read_row_group(group).to_pylist()
            order = np.random.default_rng([self.seed + self.epoch, i]).permutation(len(rows)) \
                if self.shuffle else range(len(rows))
            for j in order:
                row = from_row(rows[j])
                row["tokens"] = torch.from_numpy(row["tokens"])
                yield row
