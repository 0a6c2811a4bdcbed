"""One record per clip, and the Parquet schema of a shard.

A record is a plain dict: the columns below, with `tokens` as an int32 numpy array of shape
`token_shape` = [T', H', W'] (the very integers `vtoken.tokenize` returns for the clip, stored
flat in C order). pyarrow is imported only where a shard is written or read.
"""

from __future__ import annotations

import numpy as np

# (name, pyarrow type name) in column order; the types are built lazily (pyarrow is optional).
COLUMNS = (
    ("source", "string"),         # absolute path of the source file
    ("source_sha256", "string"),  # of the file's bytes
    ("clip_index", "int32"),      # 0, 1, ... within the source
    ("first_frame", "int64"),     # index in the source of the clip's first frame
    ("frame_count", "int32"),     # frames in the clip (clip_frames, or fewer for the last clip)
    ("fps_num", "int64"),         # the source's exact frame rate, fps_num / fps_den
    ("fps_den", "int64"),
    ("orig_width", "int32"),      # the source's frame size
    ("orig_height", "int32"),
    ("width", "int32"),           # the frame size that was tokenized (after --max-side)
    ("height", "int32"),
    ("is_image", "bool"),
    ("model_name", "string"),
    ("model_sha256", "string"),
    ("planes", "int32"),          # bit-planes kept: tokens lie in [0, 2**planes)
    ("token_shape", "shape"),     # [T', H', W']
    ("tokens", "tokens"),         # int32, flat
)
NAMES = tuple(name for name, _ in COLUMNS)
SCHEMA_VERSION = 1


def arrow_schema(metadata: dict | None = None):
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "bool": pa.bool_(),
             "shape": pa.list_(pa.int32(), 3), "tokens": pa.list_(pa.int32())}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS], metadata=metadata)


def make_record(meta: dict, clip_index: int, first_frame: int, frames: np.ndarray, tokens: np.ndarray,
                model_name: str, model_sha256: str, planes: int) -> dict:
    t, h, w = frames.shape[:3]
    if tokens.max(initial=0) >= 2**31:
        raise ValueError("tokens do not fit int32")  # K <= 31 for every model we make
    return {**meta, "clip_index": clip_index, "first_frame": first_frame, "frame_count": t, "width": w,
            "height": h, "model_name": model_name, "model_sha256": model_sha256, "planes": planes,
            "token_shape": list(tokens.shape), "tokens": tokens.astype(np.int32)}


def record_bytes(record: dict) -> int:
    """A shard's size budget counts tokens at 4 bytes each, plus the other columns."""
    return 4 * int(np.prod(record["token_shape"])) + 256


def to_table(records: list[dict], metadata: dict | None = None):
    import pyarrow as pa

    columns = {name: [r[name] for r in records] for name in NAMES if name != "tokens"}
    columns["tokens"] = [np.ravel(r["tokens"]) for r in records]
    return pa.Table.from_pydict(columns, schema=arrow_schema(metadata))


def from_row(row: dict) -> dict:
    """A record as read back from a shard: tokens int64 [T', H', W'] like vtoken.tokenize."""
    out = dict(row)
    shape = tuple(int(x) for x in row["token_shape"])
    out["token_shape"] = list(shape)
    out["tokens"] = np.asarray(row["tokens"], dtype=np.int64).reshape(shape)
    return out
