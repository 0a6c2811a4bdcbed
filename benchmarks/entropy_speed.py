"""Entropy-coder benchmark: throughput and bits per bit of vtoken.entropy on synthetic chunks.

    .venv/bin/python benchmarks/entropy_speed.py [--chunks 4] [--ablation] [--out FILE]

Throughput is in Mbit/s of *input* bits (K*T*H*W per chunk), encode = encode() + commit(),
decode = decode(), from CPU time of this (single-threaded) process, so that other jobs on a
shared machine do not distort it; wall-clock ms per chunk are printed beside it. Chunks are consecutive (one key chunk, then non-key chunks) of smooth,
partly moving bits (vtoken.entropy.synthetic.smooth_bits). Rates are bits per input bit and
bpp for a chunk of 16 frames at 8x spatial downsampling. --ablation re-measures the rates
with one context feature switched off at a time (by patching the model's functions).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import constriction  # noqa: F401  (version check below)
import numpy as np

from vtoken.entropy import BitplaneCoder, format_version
from vtoken.entropy.synthetic import smooth_bits

K, T = 18, 5
SIZES = {"360p-like": (45, 80), "1080p-like": (136, 240)}


def sequence(kind: str, chunks: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """Consecutive chunks of one synthetic clip."""
    n = chunks * T
    if kind == "random":
        rng = np.random.default_rng(seed)
        bits = (rng.random((K, n, h, w)) < 0.5).astype(np.uint8)
    elif kind == "static":
        bits = np.repeat(smooth_bits(K, 1, h, w, seed=seed), n, axis=1)
    elif kind == "smooth":  # the "realistic" case: 30% of the width moves, weak jitter
        bits = smooth_bits(K, n, h, w, seed=seed, moving=0.3, jitter=0.03)
    elif kind == "moving":
        bits = smooth_bits(K, n, h, w, seed=seed, moving=1.0, jitter=0.03)
    else:
        raise ValueError(kind)
    return [np.ascontiguousarray(bits[:, i * T : (i + 1) * T]) for i in range(chunks)]


def run(chunks: list[np.ndarray]) -> tuple[list[int], np.ndarray]:
    """Bytes per chunk and [[enc cpu, enc wall], [dec cpu, dec wall]] seconds over all chunks,
    checking the round trip."""
    enc, dec = BitplaneCoder(K), BitplaneCoder(K)
    sizes, times = [], np.zeros((2, 2))
    clock = lambda: np.array([time.process_time(), time.perf_counter()])  # noqa: E731
    for bits in chunks:
        t0 = clock()
        segments = enc.encode(bits)
        enc.commit(bits, K)
        t1 = clock()
        out = dec.decode(segments, bits.shape[1:])
        t2 = clock()
        if not np.array_equal(out, bits):
            raise SystemExit("round trip failed")
        sizes.append(sum(len(s) for s in segments))
        times += [t1 - t0, t2 - t1]
    return sizes, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--machine", default="2-core CPU dev machine")
    ap.add_argument("--ablation", action="store_true", help="also rate each context feature")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    args = ap.parse_args()

    lines = [
        "# vtoken entropy coder benchmark",
        "command: .venv/bin/python benchmarks/entropy_speed.py "
        f"--chunks {args.chunks}{' --ablation' if args.ablation else ''}",
        f"machine: {args.machine} ({platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, constriction {_version('constriction')}); format {format_version(None)} (no cross-plane predictor: synthetic bits)",
        f"chunks: K={K} planes, T={T} latent frames, {args.chunks} consecutive chunks "
        "(first is a key chunk), every plane kept; single thread",
        "",
        "## throughput (Mbit/s of input bits from CPU time; smooth bits, 30% of the width moving)",
        f"{'size':12s} {'bits/chunk':>11s} {'encode':>8s} {'decode':>8s} "
        f"{'enc ms/chunk cpu/wall':>22s} {'dec ms/chunk cpu/wall':>22s}",
    ]
    for name, (h, w) in SIZES.items():
        chunks = sequence("smooth", args.chunks, h, w)
        run(chunks[:1])  # warm-up (caches, allocator)
        _, times = run(chunks)
        nbits, n = chunks[0].size, len(chunks)
        ms = times / n * 1e3
        lines.append(
            f"{name:12s} {nbits:11d} {nbits * n / times[0, 0] / 1e6:8.2f} "
            f"{nbits * n / times[1, 0] / 1e6:8.2f} {ms[0, 0]:13.1f} / {ms[0, 1]:6.1f} "
            f"{ms[1, 0]:13.1f} / {ms[1, 1]:6.1f}"
        )

    h, w = SIZES["360p-like"]
    pixels = 16 * (8 * h) * (8 * w)  # a chunk of 16 frames at 8x spatial downsampling
    lines += [
        "",
        f"## rate, 360p-like ({h}x{w} latents); bpp = chunk bits / (16 frames x {8 * w}x{8 * h})",
        f"{'content':8s} {'key chunk b/b':>14s} {'next chunks b/b':>16s} {'key bpp':>9s} {'next bpp':>9s}",
    ]
    for kind in ("static", "smooth", "moving", "random"):
        sizes, _ = run(sequence(kind, args.chunks, h, w, seed=1))
        nbits = K * T * h * w
        key, nxt = sizes[0] * 8, float(np.mean(sizes[1:])) * 8
        lines.append(
            f"{kind:8s} {key / nbits:14.4f} {nxt / nbits:16.4f} {key / pixels:9.4f} {nxt / pixels:9.5f}"
        )

    # Static content inside one key chunk: repeated latent frames vs the first frame alone.
    frame = smooth_bits(K, 1, h, w, seed=2)
    first = sum(len(s) for s in BitplaneCoder(K).encode(frame))
    still = sum(len(s) for s in BitplaneCoder(K).encode(np.repeat(frame, T, axis=1)))
    lines += [
        "",
        f"static key chunk: first latent frame alone {first} B; {T} identical frames {still} B "
        f"-> the {T - 1} repeats cost {(still - first) / first:.2%} of the first frame",
    ]
    if args.ablation:
        lines += ["", *ablation(args.chunks, h, w)]
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


def ablation(n_chunks: int, h: int, w: int) -> list[str]:
    """Bits per bit (key chunk / later chunks) with one feature of the context model off."""
    import vtoken.entropy.contexts as cx
    import vtoken.entropy.motion as mo

    kinds = ("static", "smooth", "moving", "random")
    seqs = {kind: sequence(kind, n_chunks, h, w, seed=1) for kind in kinds}
    out = [
        "## ablation, 360p-like, bits per bit as key chunk / later chunks (one feature off at a time)",
        f"{'model':36s} " + " ".join(f"{k:>15s}" for k in kinds),
    ]

    def measure(name: str) -> None:
        cells = []
        for kind in kinds:
            sizes, _ = run(seqs[kind])
            nbits = seqs[kind][0].size
            cells.append(f"{sizes[0] * 8 / nbits:.4f}/{float(np.mean(sizes[1:])) * 8 / nbits:.4f}")
        out.append(f"{name:36s} " + " ".join(f"{c:>15s}" for c in cells))

    measure("full model")
    saved = cx.temporal_base, cx.intra_a, cx.intra_d, cx.intra_b, mo.best_field
    try:
        cx.temporal_base = lambda prev, changed: saved[0](prev, changed * 0)
        measure("no earlier-planes-changed count")
        cx.temporal_base = saved[0]
        cx.intra_a = lambda below, shape: saved[1](None, shape)
        cx.intra_d = lambda below, cur: saved[2](None, cur)
        cx.intra_b = lambda below, cur: saved[3](None, cur)
        measure("no plane k-1 bit (intra frames)")
        cx.intra_a, cx.intra_d, cx.intra_b = saved[1:4]
        mo.best_field = lambda cost: np.zeros(cost.shape[1:], dtype=np.int64)
        measure("no motion search (co-located only)")
    finally:
        cx.temporal_base, cx.intra_a, cx.intra_d, cx.intra_b, mo.best_field = saved
    return out


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
