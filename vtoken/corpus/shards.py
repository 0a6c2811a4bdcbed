"""Shards: Parquet files named `shard-GGGGGG-PPP.parquet` (group, part), written atomically.

Sources are numbered in order and grouped `sources_per_shard` at a time; a group's records,
in (source, clip) order, fill parts of at most `shard_bytes` each. The names and contents
depend only on the sources and settings, so a rerun writes the same files over the same
names. Each part is written to a hidden temporary file and renamed: a reader never sees a
half-written shard. Records are written as their sources complete, in order, so the driver
holds only the sources that finished ahead of an earlier one, not a whole group.
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


class GroupWriter:
    """Writes one group's records, given source by source in order, into parts of at most
    `shard_bytes` (a part is closed before a record that would overflow it), in row groups of
    ROW_GROUP_ROWS records. Memory holds one row group; each part is renamed into place when
    it is closed. `close()` returns [{"name", "records", "bytes"}]; `abort()` removes the part
    being written."""

    def __init__(self, out: Path, group: int, shard_bytes: int, metadata: dict):
        self.out, self.group, self.shard_bytes, self.metadata = Path(out), group, shard_bytes, metadata
        self.written: list[dict] = []
        self._stack = None
        self._writer = None
        self._rows: list[dict] = []
        self._count = self._size = 0

    def add(self, records: list[dict]) -> None:
        for record in records:
            n = record_bytes(record)
            if self._count and self._size + n > self.shard_bytes:
                self._close_part()
            if self._writer is None:
                self._open_part()
            self._rows.append(record)
            self._count += 1
            self._size += n
            if len(self._rows) == ROW_GROUP_ROWS:
                self._flush()

    def _open_part(self) -> None:
        import contextlib

        import pyarrow.parquet as pq

        from .records import arrow_schema

        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.out / shard_name(self.group, len(self.written)), overwrite=True))
        self._writer = pq.ParquetWriter(tmp, arrow_schema(self.metadata), compression="zstd")

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(to_table(self._rows, self.metadata), row_group_size=ROW_GROUP_ROWS)
            self._rows = []

    def _close_part(self) -> None:
        self._flush()
        self._writer.close()
        self._stack.close()  # renames the temporary file into place
        path = self.out / shard_name(self.group, len(self.written))
        self.written.append({"name": path.name, "records": self._count, "bytes": os.path.getsize(path)})
        self._writer = self._stack = None
        self._count = self._size = 0

    def close(self) -> list[dict]:
        if self._writer is not None:
            self._close_part()
        return self.written

    def abort(self) -> None:
        if self._stack is not None:
            self._writer.close()
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)  # removes the temporary file
            self._writer = self._stack = None


def shard_files(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).iterdir() if SHARD_RE.match(p.name))
