"""Where the work runs: in this process, in local worker processes, or on Ray.

Every engine yields one result per source, in any order: (index, records, error) for
tokenizing, (index, result, error) for encoding. The driver (vtoken.corpus.run) writes.

* `LocalEngine(workers)`: workers == 1 runs inline; more start that many processes (spawn),
  each loading the model once. A worker that dies (killed, out of memory) breaks the pool:
  it is restarted and the sources it held are retried, up to MAX_ATTEMPTS times.
* `RayEngine(address, workers)`: Ray Data; decoding and chunking are CPU tasks, the model is
  an actor pool of `workers` actors (one GPU each when the job runs on CUDA), results stream
  back to the driver, which writes the shards. Ray is imported only here.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

import numpy as np

from ..errors import UsageError
from .work import EncodeJob, Encoding, TokenizeJob, Tokenizing, one_line

MAX_ATTEMPTS = 3
DECODE_CPUS = 0.5
RAY_HINT = "Ray is not installed: pip install 'vtoken[ray]' (or run without --ray, with --workers N)"

# One state per worker process (set by the pool's initializer).
_STATE = None


def _init_tokenize(job: dict) -> None:
    global _STATE
    _STATE = Tokenizing(TokenizeJob(**job))


def _init_encode(job: dict) -> None:
    global _STATE
    _STATE = Encoding(EncodeJob(**job))


def _tokenize_one(path: str):
    return _STATE.source(path)


def _encode_one(pair: tuple[str, str]):
    return _STATE.file(*pair)


class LocalEngine:
    name = "local"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise UsageError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def tokenize(self, job: TokenizeJob, sources) -> Iterator[tuple[int, list, str | None]]:
        items = {s.index: s.path for s in sources}
        if self.workers == 1:
            state = Tokenizing(job)
            for index, path in items.items():
                yield (index, *state.source(path))
            return
        yield from self._pool(_init_tokenize, job.to_dict(), _tokenize_one, items)

    def encode(self, job: EncodeJob, pairs: dict[int, tuple[str, str]]) -> Iterator[tuple[int, dict | None, str | None]]:
        if self.workers == 1:
            state = Encoding(job)
            for index, pair in pairs.items():
                yield (index, *state.file(*pair))
            return
        yield from self._pool(_init_encode, job.__dict__, _encode_one, pairs)

    def _pool(self, init, job: dict, fn, items: dict) -> Iterator[tuple]:
        import multiprocessing as mp

        todo = dict(items)
        attempts = {k: 0 for k in items}
        while todo:
            broken = False
            pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=init,
                                       initargs=(job,))
            try:
                futures = {pool.submit(fn, item): key for key, item in todo.items()}
                pending = set(futures)
                while pending and not broken:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        key = futures[fut]
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            # Which source took the worker down is unknown: each one in flight
                            # counts an attempt.
                            broken = True
                            attempts[key] += 1
                            continue
                        todo.pop(key)
                        yield (key, *result)
            finally:
                # Also on an interruption: do not wait for the queued sources.
                pool.shutdown(wait=not broken, cancel_futures=True)
            if broken:
                # The pool is gone with every source it held; retry them in a fresh one.
                for key in [k for k in todo if attempts[k] >= MAX_ATTEMPTS]:
                    todo.pop(key)
                    yield key, [] if fn is _tokenize_one else None, f"worker process died {MAX_ATTEMPTS} times"

    def close(self) -> None:
        pass


def import_ray():
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(RAY_HINT) from None
    return ray


class RayEngine:
    """Ray Data over a local Ray (`address="auto"`, or the cluster named in RAY_ADDRESS) or
    the cluster at `address`."""

    name = "ray"

    def __init__(self, address: str = "auto", workers: int = 1, threads: int = 1, progress: bool = False):
        ray = import_ray()
        if workers < 1:
            raise UsageError(f"workers must be at least 1, got {workers}")
        self.workers, self.threads = workers, threads
        self.started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address == "auto" and not os.environ.get("RAY_ADDRESS"):
                # Logical CPUs: the actors' plus one for decoding tasks, never fewer than the machine has.
                kwargs["num_cpus"] = max(os.cpu_count() or 1, workers * threads + 1)
            elif address != "auto":
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"cannot start or join Ray at {address}: {one_line(exc)}") from None
            self.started = True
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = progress
        # Small blocks: a long video's clips flow to the model while it is still being decoded.
        ctx.target_max_block_size = 16 * 1024 * 1024
        self.ray = ray

    def _pool(self):
        # Ray Data restarts a dead actor and retries its batch (max_restarts=-1 by default).
        from ray.data import ActorPoolStrategy

        return ActorPoolStrategy(size=self.workers)

    def _actor_resources(self, device: str) -> dict:
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if device == "cuda" or (device == "auto" and gpus > 0):
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": self.threads}

    def tokenize(self, job: TokenizeJob, sources) -> Iterator[tuple[int, list, str | None]]:
        import ray.data

        from .records import NAMES

        items = [{"index": s.index, "path": s.path} for s in sources]
        if not items:
            return
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        # Decoding asks for half a CPU: it is light beside the model, and resources unlike the
        # actors' keep Ray Data from fusing it into them, so decoding and the model overlap.
        ds = ds.map_batches(_decode_batch, batch_size=1, batch_format="numpy", num_cpus=DECODE_CPUS,
                            fn_kwargs={"clip_frames": job.clip_frames, "max_side": job.max_side})
        ds = ds.map_batches(_TokenizeActor, batch_size=1, batch_format="numpy", compute=self._pool(),
                            fn_constructor_kwargs={"job": job.to_dict()},
                            **self._actor_resources(job.device))
        # Rows are keyed by (source, clip): a retried task or batch (a worker died) may deliver
        # a clip twice; a source is complete when its end row and every clip are in.
        state: dict[int, dict] = {}
        for row in ds.iter_rows():
            index = int(row["index"])
            entry = state.setdefault(index, {"clips": {}, "end": None})
            if row["kind"] == "end":
                entry["end"] = (int(row["clips"]), str(row["error"]))
            elif row["error"]:
                entry["clips"][int(row["clip_index"])] = str(row["error"])
            else:
                record = json.loads(row["record"])
                record["tokens"] = np.frombuffer(row["tokens"], np.int32).reshape(record["token_shape"])
                entry["clips"][int(row["clip_index"])] = {k: record[k] for k in NAMES}
            if entry["end"] is not None and len(entry["clips"]) == entry["end"][0]:
                del state[index]
                clips = [entry["clips"][i] for i in sorted(entry["clips"])]
                errors = [entry["end"][1]] if entry["end"][1] else []
                errors += [c for c in clips if isinstance(c, str)]
                records = [c for c in clips if not isinstance(c, str)]
                error = errors[0] if errors else (None if records else "no frames could be decoded")
                yield index, records, error

    def encode(self, job: EncodeJob, pairs: dict[int, tuple[str, str]]) -> Iterator[tuple[int, dict | None, str | None]]:
        import ray.data

        items = [{"index": k, "src": s, "dst": d} for k, (s, d) in pairs.items()]
        if not items:
            return
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(_EncodeActor, batch_size=1, batch_format="numpy", compute=self._pool(),
                            fn_constructor_kwargs={"job": job.__dict__},
                            **self._actor_resources(job.device))
        for row in ds.iter_rows():
            result = json.loads(row["result"]) if row["result"] else None
            yield int(row["index"]), result, (str(row["error"]) or None)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _column(values, dtype=None) -> np.ndarray:
    if dtype is object:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=dtype)


def _row(index, kind, clip_index=-1, record="", tokens=b"", clips=-1, error="", meta="", frames=b"",
         shape=(0, 0, 0, 0)) -> dict:
    return {"index": _column([index], np.int64), "kind": _column([kind]), "clip_index": _column([clip_index], np.int64),
            "record": _column([record]), "tokens": _column([tokens], object), "clips": _column([clips], np.int64),
            "error": _column([error]), "meta": _column([meta]), "frames": _column([frames], object),
            "shape": _column([list(shape)], np.int64)}


def _decode_batch(batch: dict, clip_frames: int, max_side: int | None):
    """Ray Data CPU task: one source in, one row per clip (frames as bytes) and an end row out."""
    from .sources import read_clips

    for index, path in zip(batch["index"], batch["path"]):
        n, error = 0, ""
        try:
            meta, clips = read_clips(str(path), clip_frames, max_side)
            for first, frames in clips:
                yield _row(int(index), "clip", clip_index=n, meta=json.dumps({**meta.to_dict(), "first_frame": first}),
                           frames=frames.tobytes(), shape=frames.shape)
                n += 1
        except Exception as exc:  # noqa: BLE001 - recorded as this source's failure
            from ..errors import VtokenError

            error = one_line(exc) if isinstance(exc, (VtokenError, OSError)) else \
                f"internal error: {type(exc).__name__}: {one_line(exc)}"
        yield _row(int(index), "end", clips=n, error=error)


class _TokenizeActor:
    """Ray Data actor: holds the model; clip rows in, record rows out; end rows pass through."""

    def __init__(self, job: dict):
        self.state = Tokenizing(TokenizeJob(**job))

    def __call__(self, batch: dict) -> dict:
        from .records import NAMES

        index, kind = int(batch["index"][0]), str(batch["kind"][0])
        if kind == "end":
            return _row(index, "end", clips=int(batch["clips"][0]), error=str(batch["error"][0]))
        clip_index = int(batch["clip_index"][0])
        try:
            meta = json.loads(str(batch["meta"][0]))
            first = meta.pop("first_frame")
            frames = np.frombuffer(batch["frames"][0], np.uint8).reshape([int(x) for x in batch["shape"][0]])
            record = self.state.clip(meta, clip_index, first, frames)
        except Exception as exc:  # noqa: BLE001 - recorded as this source's failure
            return _row(index, "clip", clip_index=clip_index, error=f"{type(exc).__name__}: {one_line(exc)}")
        head = {k: record[k] for k in NAMES if k != "tokens"}
        return _row(index, "clip", clip_index=clip_index, record=json.dumps(head),
                    tokens=np.ascontiguousarray(record["tokens"], np.int32).tobytes())


class _EncodeActor:
    def __init__(self, job: dict):
        self.state = Encoding(EncodeJob(**job))

    def __call__(self, batch: dict) -> dict:
        result, error = self.state.file(str(batch["src"][0]), str(batch["dst"][0]))
        return {"index": _column([int(batch["index"][0])], np.int64),
                "result": _column([json.dumps(result, default=str) if result else ""]),
                "error": _column([error or ""])}
