"""Shards: Parquet files named `shard-GGGGGG-PPP.parquet` (group, part), written atomically.

Sources are numbered in order and grouped `sources_per_shard` at a time; a group's records,
in (source, clip) order, fill parts of at most `shard_bytes` each. The names and contents
depend only on the sources and settings, so a rerun writes the same files over the same
names. Each part is written to a hidden temporary file and renamed: a reader never sees a
half-written shard.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..fsutil import atomic_path
from .records import record_bytes, to_table

SHARD_RE = re.compile(r"^shard-(\d{6})-(\d{3})\.parquet$")
ROW_GROUP_ROWS = 64  # the unit TokenShards splits between readers


def shard_name(group: int, part: int) -> str:
    return f"shard-{group:06d}-{part:03d}.parquet"


def split_parts(records: list[dict], shard_bytes: int) -> list[list[dict]]:
    parts, current, size = [], [], 0
    for record in records:
        n = record_bytes(record)
        if current and size + n > shard_bytes:
            parts.append(current)
            current, size = [], 0
        current.append(record)
        size += n
    if current:
        parts.append(current)
    return parts


def write_group(out: Path, group: int, records: list[dict], shard_bytes: int, metadata: dict) -> list[dict]:
    """Write a group's parts; return [{"name", "records", "bytes"}]."""
    import pyarrow.parquet as pq

    written = []
    for part, rows in enumerate(split_parts(records, shard_bytes)):
        path = out / shard_name(group, part)
        table = to_table(rows, metadata)
        with atomic_path(path, overwrite=True) as tmp:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        written.append({"name": path.name, "records": len(rows), "bytes": os.path.getsize(path)})
    return written


def shard_files(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).iterdir() if SHARD_RE.match(p.name))
