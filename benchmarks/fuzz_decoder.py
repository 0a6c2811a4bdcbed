"""Fuzz the whole decoder (hostile input must end in vtoken's own errors): container parse,
entropy decoding, the model and the concealment logic, on mutated real streams. Only
vtoken.errors types may escape and no decode may run long; anything else is printed with its
seed.

    python benchmarks/fuzz_decoder.py --files 10000 [--seed 0] [--out results.txt]
    python benchmarks/fuzz_decoder.py --files 5000 --structured   # issue 11

`--structured`: benchmarks/fuzz_structured.py's structure-aware mutations (every header field
at its limits, empty and oversized segments, records out of order; CRCs valid). Each decode's
time and peak resident memory (Linux VmHWM, reset before each decode) are recorded; the
slowest decode and the largest peak are reported with the mutation that caused them.

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


def make_stream(folder: Path, audio: bool = False) -> tuple[bytes, object]:
    """A real 13-frame stream (3 chunks, a key every 2) from a small random-init model; with
    `audio`, the source carries an AAC track (tests/clips.py) that the stream keeps."""
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
    if audio:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from clips import make_clip

        src = make_clip(folder / "src.mp4", frames=13, size=(48, 32), audio=True, data=clip.astype(np.uint8))
    out = folder / "base.mvt"
    encode(src, out, model=model, device="cpu", chunk_frames=5, key_interval=2, overwrite=True)
    return out.read_bytes(), model


def decode_once(path: Path, model, tolerant: bool, output: Path | None = None) -> int:
    """Frames decoded: in memory, or through a file `output` (the writer and audio muxing)."""
    from vtoken import decode, decode_frames

    if output is not None:
        return decode(path, output, model=model, device="cpu", tolerant=tolerant, overwrite=True).frames
    return sum(len(f) for f in decode_frames(path, model=model, device="cpu", tolerant=tolerant))


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(files: int, seed: int, folder: Path, log=print, structured: bool = False,
        max_seconds: float | None = None) -> dict:
    from vtoken.errors import VtokenError

    fz = _container_fuzz()
    base, model = make_stream(folder, audio=structured)
    regions = fz.crc_regions(base)
    sfz = fz.structured_module() if structured else None
    split = sfz.parts(base) if sfz else None
    rng = random.Random(seed)
    outcomes, failures, slowest, slowest_kind = collections.Counter(), [], 0.0, ""
    peak_growth, peak_kind, peak_rss = 0, "", 0
    path = folder / "mutated.mvt"
    started = time.perf_counter()
    done = 0
    for i in range(files):
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break  # a time budget on a shared machine: the report says how many files ran
        done = i + 1
        data, kinds = sfz.mutate(rng, split) if sfz else fz.mutate(rng, base, regions)
        path.write_bytes(data)
        for tolerant in (False, True):
            measured = _reset_peak_rss()
            before = _rss_kib("VmRSS")
            t0 = time.perf_counter()
            try:
                # Structured runs decode into a Matroska file: the writer and the audio too.
                frames = decode_once(path, model, tolerant, folder / "out.mkv" if structured else None)
                outcomes[f"{'tolerant' if tolerant else 'strict'}: decoded ({'13' if frames == 13 else 'other'} frames)"] += 1
            except VtokenError as exc:
                outcomes[f"{'tolerant' if tolerant else 'strict'}: {type(exc).__name__}"] += 1
            except Exception:  # noqa: BLE001 - this is what the fuzz looks for
                failures.append((i, tolerant, kinds, traceback.format_exc(limit=4)))
            took = time.perf_counter() - t0
            if took > slowest:
                slowest, slowest_kind = took, f"file {i} {'tolerant' if tolerant else 'strict'} {kinds} ({len(data)} bytes)"
            if measured:
                high = _rss_kib("VmHWM")
                peak_rss = max(peak_rss, high)
                if high - before > peak_growth:
                    peak_growth, peak_kind = high - before, f"file {i} {'tolerant' if tolerant else 'strict'} {kinds}"
            if took > SLOW_S:
                failures.append((i, tolerant, kinds, f"slow: {took:.2f} s"))
    seconds = time.perf_counter() - started
    return {"files": done, "seed": seed, "seconds": seconds, "slowest": slowest, "slowest_kind": slowest_kind,
            "peak_growth_kib": peak_growth, "peak_kind": peak_kind, "peak_rss_kib": peak_rss,
            "outcomes": dict(outcomes), "failures": failures, "structured": structured}


def retime(only: list[int], seed: int, folder: Path, structured: bool) -> list[str]:
    """Best of three decodes (strict and tolerant) of the listed file numbers of a run: tells
    a slow file from a machine that was saturated at the time."""
    from vtoken.errors import VtokenError

    fz = _container_fuzz()
    base, model = make_stream(folder, audio=structured)
    regions = fz.crc_regions(base)
    sfz = fz.structured_module() if structured else None
    split = sfz.parts(base) if sfz else None
    rng = random.Random(seed)
    path, lines = folder / "mutated.mvt", []
    for i in range(max(only) + 1):
        data, kinds = sfz.mutate(rng, split) if sfz else fz.mutate(rng, base, regions)  # replays the run
        if i not in only:
            continue
        path.write_bytes(data)
        for tolerant in (False, True):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                try:
                    decode_once(path, model, tolerant, folder / "out.mkv" if structured else None)
                except VtokenError:
                    pass
                best = min(best, time.perf_counter() - t0)
            lines.append(f"file {i} {'tolerant' if tolerant else 'strict'} {kinds}: best of 3 {best * 1e3:.0f} ms")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structured", action="store_true", help="structure-aware mutations (fuzz_structured.py)")
    ap.add_argument("--max-seconds", type=float, help="stop after this long (the report counts the files run)")
    ap.add_argument("--only", help="re-time only these file numbers of a run (comma list)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["VTOKEN_MODEL_PATH"] = tmp
            lines = retime([int(v) for v in args.only.split(",")], args.seed, Path(tmp), args.structured)
        print("\n".join(lines))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VTOKEN_MODEL_PATH"] = tmp
        res = run(args.files, args.seed, Path(tmp), structured=args.structured, max_seconds=args.max_seconds)
    kind = "structure-aware mutated" if args.structured else "mutated"
    lines = [
        f"fuzz_decoder: {res['files']} {kind} .mvt files x (strict, tolerant), seed {res['seed']}, "
        f"{res['seconds']:.1f} s ({res['seconds'] / max(1, 2 * res['files']) * 1e3:.2f} ms/decode)",
        f"command: python benchmarks/fuzz_decoder.py --files {args.files} --seed {res['seed']}"
        + (" --structured" if args.structured else "")
        + (f" --max-seconds {args.max_seconds:g}" if args.max_seconds else ""),
        f"slowest decode: {res['slowest'] * 1e3:.0f} ms ({res['slowest_kind']})",
        f"largest peak resident memory growth during one decode: {res['peak_growth_kib'] / 1024:.1f} MiB "
        f"({res['peak_kind']}); highest peak RSS of the process: {res['peak_rss_kib'] / 1024:.0f} MiB",
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
