"""Fuzz the whole decoder (hostile input must end in vtoken's own errors): container parse,
entropy decoding, the model and the concealment logic, on mutated real streams. Only
vtoken.errors types may escape and no decode may run long; anything else is printed with its
seed.

    python benchmarks/fuzz_decoder.py --files 10000 [--seed 0] [--out results.txt]

The mutations are benchmarks/fuzz_container.py's (bit flips, extreme field values, cuts,
inserts, duplicated spans, half of the in-place ones with every CRC recomputed so the checks
behind the CRCs are reached). tests/test_robustness.py runs a short version.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

SLOW_S = 5.0  # a decode of these tiny streams slower than this counts as a failure


def _container_fuzz():
    path = Path(__file__).resolve().parent / "fuzz_container.py"
    spec = importlib.util.spec_from_file_location("fuzz_container", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_stream(folder: Path) -> tuple[bytes, object]:
    """A real 13-frame stream (3 chunks, a key every 2) from a small random-init model."""
    import numpy as np
    import torch

    from vtoken import encode
    from vtoken.media import VideoWriter
    from vtoken.models import Tokenizer, TokenizerConfig, load_model, save_model

    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16))).eval()
    json_path = save_model(model, folder, "fuzz-tiny")
    model = load_model(json_path)
    y, x = np.mgrid[0:32, 0:48]
    clip = np.stack([np.stack([(x * 5 + t * 3) % 256, (y * 7) % 256, (x + y + t) % 256], -1) for t in range(13)])
    src = folder / "src.y4m"
    with VideoWriter(src, 48, 32, 25, overwrite=True) as w:
        w.write(clip.astype(np.uint8))
    out = folder / "base.mvt"
    encode(src, out, model=model, device="cpu", chunk_frames=5, key_interval=2, overwrite=True)
    return out.read_bytes(), model


def decode_once(path: Path, model, tolerant: bool) -> int:
    from vtoken import decode_frames

    return sum(len(f) for f in decode_frames(path, model=model, device="cpu", tolerant=tolerant))


def run(files: int, seed: int, folder: Path, log=print) -> dict:
    from vtoken.errors import VtokenError

    fz = _container_fuzz()
    base, model = make_stream(folder)
    regions = fz.crc_regions(base)
    rng = random.Random(seed)
    outcomes, failures, slowest = collections.Counter(), [], 0.0
    path = folder / "mutated.mvt"
    started = time.perf_counter()
    for i in range(files):
        data, kinds = fz.mutate(rng, base, regions)
        path.write_bytes(data)
        for tolerant in (False, True):
            t0 = time.perf_counter()
            try:
                frames = decode_once(path, model, tolerant)
                outcomes[f"{'tolerant' if tolerant else 'strict'}: decoded ({'13' if frames == 13 else 'other'} frames)"] += 1
            except VtokenError as exc:
                outcomes[f"{'tolerant' if tolerant else 'strict'}: {type(exc).__name__}"] += 1
            except Exception:  # noqa: BLE001 - this is what the fuzz looks for
                failures.append((i, tolerant, kinds, traceback.format_exc(limit=4)))
            took = time.perf_counter() - t0
            slowest = max(slowest, took)
            if took > SLOW_S:
                failures.append((i, tolerant, kinds, f"slow: {took:.2f} s"))
    seconds = time.perf_counter() - started
    return {"files": files, "seed": seed, "seconds": seconds, "slowest": slowest,
            "outcomes": dict(outcomes), "failures": failures}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VTOKEN_MODEL_PATH"] = tmp
        res = run(args.files, args.seed, Path(tmp))
    lines = [
        f"fuzz_decoder: {res['files']} mutated .mvt files x (strict, tolerant), seed {res['seed']}, "
        f"{res['seconds']:.1f} s ({res['seconds'] / max(1, 2 * res['files']) * 1e3:.2f} ms/decode, slowest {res['slowest'] * 1e3:.0f} ms)",
        f"command: python benchmarks/fuzz_decoder.py --files {res['files']} --seed {res['seed']}",
        f"non-vtoken exceptions or slow decodes: {len(res['failures'])}",
    ]
    lines += [f"  {k}: {v}" for k, v in sorted(res["outcomes"].items())]
    for i, tolerant, kinds, tb in res["failures"][:10]:
        lines.append(f"FAILURE file {i} tolerant={tolerant} ({kinds}):\n{tb}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
