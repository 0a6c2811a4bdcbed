"""How much is left in the coder's adaptive counts? Each clip is encoded as `vtoken encode`
codes it (all planes, the default model and settings); the batches the coder walks (plane,
contexts, the probabilities it used, the bits) are recorded, then replayed offline under
variants of the adaptive model, by ideal code length (-log2 p per bit):

* the shipped counts (the replay must reproduce every recorded probability: checked);
* its constants: MAX_TOTAL (halving), SHARED_WEIGHT (weight of the pooled table),
  PRIOR_TOTAL (how strongly the fitted prior starts the counts);
* a secondary estimation stage (SSE / APM as context-mixing compressors use it): the
  probability's logit, interpolated over 33 buckets in [-8, 8], indexes an adaptive table
  per plane and context kind (temporal / intra x pass A / D / B), whose estimate is averaged
  with the counts' probability (weight w).

Also the key latent frame's share of the bits and the bits per coded bit of key and
predicted latent frames by group of planes. No format change is made: a variant that paid
would need a new entropy format version.

    python benchmarks/coder_replay.py [NAME=]CLIP.y4m [...] [--names a,b,...] [--device cpu] [--out results.md]

The clips are taken as they are (all their frames); `vtoken bench` leaves its references in
.cache/bench/refs (33 frames at 640x360; the 97-frame cuts of eval-long.json code three chunks).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

import clip_probe

SSE_BUCKETS = 33
PLANE_GROUPS = ((0, 8), (8, 18), (18, 32), (32, 64))


@contextlib.contextmanager
def recording(log: list):
    """While active, every batch the coder's encode walks is appended to `log` as ("batch", k,
    contexts, numerators, bits), every end of a plane as ("end", k), every reset as ("reset",).
    Only BitplaneCoder.encode's walk is recorded (not commit's or estimate's)."""
    from vtoken.entropy import coder as ec
    from vtoken.entropy import model as em

    counts, bpc = em.AdaptiveCounts, ec.BitplaneCoder
    saved = counts.probabilities, counts.update, counts.end_plane, bpc.reset, bpc.encode
    active = [False]

    def probabilities(self, k, ctx):
        n = saved[0](self, k, ctx)
        if active[0]:
            log.append(["batch", k, ctx.copy(), n.copy()])
        return n

    def update(self, k, ctx, symbols):
        if active[0]:
            log[-1].append(symbols.astype(np.uint8))
        return saved[1](self, k, ctx, symbols)

    def end_plane(self, k):
        if active[0]:
            log.append(["end", k])
        return saved[2](self, k)

    def reset(self):
        log.append(["reset"])
        return saved[3](self)

    def encode(self, bits, enough=None):
        active[0] = True
        try:
            return saved[4](self, bits, enough)
        finally:
            active[0] = False

    counts.probabilities, counts.update, counts.end_plane, bpc.reset, bpc.encode = (
        probabilities, update, end_plane, reset, encode)
    try:
        yield log
    finally:
        counts.probabilities, counts.update, counts.end_plane, bpc.reset, bpc.encode = saved


def ideal_bits(n: np.ndarray, bits: np.ndarray) -> np.ndarray:
    from vtoken.entropy.model import ONE

    p1 = n / ONE
    return -np.log2(np.where(bits == 1, p1, 1.0 - p1))


def context_kind(ctx: np.ndarray) -> np.ndarray:
    """0-5: temporal A, D, B, intra A, D, B (vtoken.entropy.contexts' numbering)."""
    from vtoken.entropy import contexts as cx

    return np.searchsorted([cx.OFF_TD, cx.OFF_TB, cx.OFF_IA, cx.OFF_ID, cx.OFF_IB], ctx % cx.N_BASE_CONTEXTS,
                           side="right")


class SecondaryEstimate:
    """An adaptive table per (plane, context kind) over the logit of the counts' probability,
    read by linear interpolation and averaged with it (weight `w`); its pseudo-counts halve
    above `limit`. Float arithmetic: a bound for an integer version, not a format."""

    def __init__(self, w: float, limit: float = 1023.0):
        self.w, self.limit, self.tables, self.last = w, limit, {}, None

    def refine(self, k: int, ctx: np.ndarray, n: np.ndarray) -> np.ndarray:
        from vtoken.entropy.model import ONE

        p = np.clip(n / ONE, 1e-6, 1 - 1e-6)
        x = np.clip((np.log(p / (1 - p)) + 8) / 16 * (SSE_BUCKETS - 1), 0, SSE_BUCKETS - 1 - 1e-9)
        i = x.astype(np.int64)
        f = x - i
        key = (k, int(context_kind(ctx[:1])[0]))  # a batch is one pass: one kind
        if key not in self.tables:
            grid = 1 / (1 + np.exp(-(np.arange(SSE_BUCKETS) / (SSE_BUCKETS - 1) * 16 - 8)))
            self.tables[key] = [grid * 2, np.full(SSE_BUCKETS, 2.0)]  # (ones, total)
        ones, total = self.tables[key]
        q = ones / total
        self.last = (key, i, f)
        out = (1 - self.w) * p + self.w * (q[i] * (1 - f) + q[i + 1] * f)
        return np.clip(np.round(out * ONE), 1, ONE - 1)

    def learn(self, bits: np.ndarray) -> None:
        key, i, f = self.last
        ones, total = self.tables[key]
        for j, wt in ((i, 1 - f), (i + 1, f)):
            ones += np.bincount(j, weights=wt * bits, minlength=SSE_BUCKETS)
            total += np.bincount(j, weights=wt, minlength=SSE_BUCKETS)
        over = total > self.limit
        ones[over] *= 0.5
        total[over] *= 0.5


def replay(log: list, make_counts, make_sse=None, check: bool = False) -> float:
    """Ideal bits of the recorded batches under fresh counts (make_counts()) and an optional
    secondary estimate; `check`: every probability must equal the recorded one."""
    total, counts, sse = 0.0, None, None
    for event in log:
        if event[0] == "reset":
            counts, sse = make_counts(), make_sse() if make_sse else None
        elif event[0] == "end":
            counts.end_plane(event[1])
        else:
            _, k, ctx, recorded, bits = event
            n = counts.probabilities(k, ctx)
            if check and not np.array_equal(n, recorded):
                raise AssertionError(f"the replay's probabilities differ from the coder's at plane {k}")
            if sse is not None:
                n = sse.refine(k, ctx, n)
                sse.learn(bits)
            total += float(ideal_bits(n, bits).sum())
            counts.update(k, ctx, bits.astype(np.int64))
    return total


def key_split(log: list, planes: int) -> str:
    """The key latent frame's share of the bits and bits per coded bit of key / predicted
    latent frames per group of planes (intra contexts are the key frame's)."""
    from vtoken.entropy import contexts as cx

    cost, count = np.zeros((2, planes)), np.zeros((2, planes))
    for event in log:
        if event[0] == "batch":
            _, k, ctx, n, bits = event
            intra = ((ctx % cx.N_BASE_CONTEXTS) >= cx.OFF_IA).astype(np.int64)
            b = ideal_bits(n, bits)
            for kind in (0, 1):
                cost[kind, k] += b[intra == kind].sum()
                count[kind, k] += (intra == kind).sum()
    share = cost[1].sum() / cost.sum()
    groups = ", ".join(f"{a}-{b - 1}: {cost[1, a:b].sum() / count[1, a:b].sum():.3f} / "
                       f"{cost[0, a:b].sum() / count[0, a:b].sum():.3f}" for a, b in PLANE_GROUPS if b <= planes)
    return f"{share:.3f} | {groups}"


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    args = ap.parse_args(argv)
    import vtoken
    from vtoken.entropy import model as em
    from vtoken.models import load_model

    model = load_model(None, args.device)
    prior, planes = model.entropy_prior, model.config.bits
    clips = clip_probe.named_clips(ap, args)
    logs, sizes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            out = Path(tmp) / "x.mvt"
            with recording([]) as log:
                vtoken.encode(clip, out, model=model, device=args.device, overwrite=True)
            logs[name], sizes[name] = log, out.stat().st_size

    def fresh():
        return em.AdaptiveCounts(planes, prior)

    shipped = {name: replay(log, fresh, check=True) for name, log in logs.items()}
    lines = clip_probe.header("The coder's adaptive counts, replayed", "coder_replay.py", argv, args.device,
                              "the default model and settings, all planes")
    lines += ["", "## The shipped counts and the key latent frame", "",
              "| clip | file bytes | ideal bytes (replay) | key frame's share of the bits | bits per coded bit, "
              "key / predicted latent frames, by planes |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {sizes[name]} | {shipped[name] / 8:.0f} | {key_split(logs[name], planes)} |" for name in logs]
    lines += ["", "## Variants: ideal bits against the shipped counts (%, negative saves)", "",
              "| variant | " + " | ".join(logs) + " | mean |", "|---|" + "---|" * (len(logs) + 1)]

    def row(label, make_counts=fresh, make_sse=None):
        rel = [100 * (replay(log, make_counts, make_sse) / shipped[name] - 1) for name, log in logs.items()]
        lines.append(f"| {label} | " + " | ".join(f"{r:+.2f}" for r in rel) + f" | {np.mean(rel):+.2f} |")
        print(lines[-1], flush=True)

    for constant, values in (("MAX_TOTAL", (1024, 4096, 65536)), ("SHARED_WEIGHT", (8, 16, 64, 128)),
                             ("PRIOR_TOTAL", (64, 128, 512, 1024))):
        shipped_value = getattr(em, constant)
        for value in values:
            setattr(em, constant, value)  # read by AdaptiveCounts at call time
            try:
                row(f"{constant} {value} (shipped {shipped_value})")
            finally:
                setattr(em, constant, shipped_value)
    for w in (0.25, 0.5):
        row(f"SSE per plane and context kind, w {w}", make_sse=lambda w=w: SecondaryEstimate(w))
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
