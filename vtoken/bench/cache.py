"""Cache of baseline results as JSON, so a machine without the static ffmpeg reuses them.

A result's file is `baselines/<settings key>.<ffmpeg key>.json` under the cache folder:
the settings key hashes the reference y4m's sha256, the codec's full settings (encoder
arguments, quality, threads, decode format) and the metrics/record schema version; the ffmpeg
key hashes the ffmpeg version. With ffmpeg present only the exact file is a hit (a new ffmpeg
recomputes); without ffmpeg any ffmpeg version's result for those settings is used, and the
record says which version produced it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# Bump when the record shape or the metrics change meaning: old cache entries then miss.
SCHEMA_VERSION = 1


def settings_key(ref_sha256: str, settings: dict) -> str:
    blob = json.dumps({"ref": ref_sha256, "settings": settings, "schema": SCHEMA_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def version_key(ffmpeg_version: str) -> str:
    return hashlib.sha256(ffmpeg_version.encode()).hexdigest()[:12]


class BaselineCache:
    def __init__(self, root: str | Path | None):
        self.root = Path(root) / "baselines" if root else None

    def path(self, key: str, ffmpeg_version: str) -> Path | None:
        return self.root / f"{key}.{version_key(ffmpeg_version)}.json" if self.root else None

    def get(self, key: str, ffmpeg_version: str | None) -> dict | None:
        """The cached record, exact-version match when `ffmpeg_version` is given, else the
        most recently written one for `key`; None on a miss (or an unreadable entry)."""
        if self.root is None or not self.root.is_dir():
            return None
        if ffmpeg_version is not None:
            candidates = [self.path(key, ffmpeg_version)]
        else:
            candidates = sorted(self.root.glob(f"{key}.*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for p in candidates:
            try:
                return json.loads(p.read_text())
            except (OSError, ValueError):
                continue
        return None

    def put(self, key: str, ffmpeg_version: str, record: dict) -> Path | None:
        if self.root is None:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(key, ffmpeg_version)
        tmp = p.with_suffix(f".{os.getpid()}.part")
        tmp.write_text(json.dumps(record, sort_keys=True))
        tmp.replace(p)
        return p
