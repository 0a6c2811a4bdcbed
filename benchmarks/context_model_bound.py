"""How far a learned conditional model of each bit could beat the coder's hand-made contexts.

    python benchmarks/context_model_bound.py --model vtoken-patch-cpu-42e5c7f1 \
        --train data/train --eval data/eval/video --fit-clips 192 --steps 1500

An ideal-code-length experiment, no format change: a small CNN predicts every bit from what a
decoder walking the coder's order (plane by plane; in a plane, latent frame by frame; in a
frame, passes A, D, B) knows when it reaches that bit:

* the earlier planes (< k) of this latent frame, everywhere;
* planes <= k of the previous latent frame (plane k of frame t comes after plane k of t - 1);
* the bits of plane k already decoded in this frame (none in pass A, pass A's in pass D, A's
  and D's in pass B);
* which plane and which pass it is.

Its receptive field is 5 x 5 latent positions. It is fitted on training clips (cross-entropy,
Adam) and judged, with the coder's own ideal code length beside it (the model's fitted prior
and cross-plane predictor, adaptive counts as shipped), on held-out training clips and on the
eval clips. The CNN is static (it does not adapt to the clip) and reads no motion search, so a
gap here is a floor on what a learned model adds, not a ceiling. Bits per coded bit are
reported overall and per group of planes.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vtoken.entropy.coder import coder_for
from vtoken.entropy.contexts import pass_positions


@lru_cache(maxsize=8)
def pass_masks(h: int, w: int) -> torch.Tensor:
    """float [3, H, W]: 1 where a position belongs to pass A, D, B (shared: do not modify)."""
    out = torch.zeros(3, h * w)
    for i, pos in enumerate(pass_positions(h, w)):
        out[i, torch.from_numpy(pos.copy())] = 1
    return out.reshape(3, h, w)


class BitContext(nn.Module):
    """Logit of every bit of plane k in pass p of one latent frame, from the known bits."""

    def __init__(self, planes: int, width: int = 48):
        super().__init__()
        self.planes = planes
        # inputs: planes < k of this frame, planes <= k of the previous, plane k's decoded
        # bits, a previous-frame flag, a known-here flag
        self.inp = nn.Conv2d(2 * planes + 3, width, 3, padding=1)
        self.plane = nn.Embedding(planes, width)
        self.pass_ = nn.Embedding(3, width)
        self.mid = nn.Conv2d(width, width, 3, padding=1)
        self.mix = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + (self.plane(k) + self.pass_(p))[:, :, None, None]
        h = F.relu(h)
        h = F.relu(self.mid(h))
        h = F.relu(self.mix(h)) + h
        return self.out(h)[:, 0]


def inputs(cur: torch.Tensor, prev: torch.Tensor | None, ks: torch.Tensor, ps: torch.Tensor,
           masks: torch.Tensor) -> torch.Tensor:
    """Network inputs [N, 2K + 3, H, W] for planes `ks` and passes `ps` of one latent frame
    (`cur`, `prev`: signs [K, H, W] in {-1, 1}; prev None on a chunk's first frame)."""
    kk, h, w = cur.shape
    idx = torch.arange(kk)
    below = (idx[None, :] < ks[:, None]).float()[:, :, None, None]  # planes < k
    upto = (idx[None, :] <= ks[:, None]).float()[:, :, None, None]  # planes <= k
    x_cur = cur[None] * below
    if prev is None:
        x_prev = torch.zeros_like(x_cur)
        has_prev = torch.zeros(len(ks), 1, h, w)
    else:
        x_prev = prev[None] * upto
        has_prev = torch.ones(len(ks), 1, h, w)
    known = torch.stack([torch.zeros(h, w), masks[0], masks[0] + masks[1]])[ps][:, None]  # decoded in plane k
    same = cur[ks][:, None] * known
    return torch.cat([x_cur, x_prev, same, has_prev, known], dim=1)


def frame_signs(chunk: np.ndarray, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signs of latent frame t of a uint8 chunk [K, T, H, W] and of frame t - 1 (None at t = 0)."""
    def signs(i: int) -> torch.Tensor:
        return torch.from_numpy(chunk[:, i].astype(np.float32) * 2 - 1)
    return signs(t), (signs(t - 1) if t else None)


def fit(net: BitContext, chunks: list[np.ndarray], steps: int, planes_per_step: int, lr: float, seed: int) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    frames = [(c, t) for c in range(len(chunks)) for t in range(chunks[c].shape[1])]
    kk = net.planes
    log, window = [], []
    for step in range(steps):
        c, t = frames[int(torch.randint(len(frames), (1,), generator=gen))]
        s, prev = frame_signs(chunks[c], t)
        masks = pass_masks(*s.shape[1:])
        ks = torch.randperm(kk, generator=gen)[:planes_per_step].repeat_interleave(3)
        ps = torch.arange(3).repeat(planes_per_step)
        logit = net(inputs(s, prev, ks, ps, masks), ks, ps)
        target = (s[ks] > 0).float()
        where = masks[ps]
        loss = (F.binary_cross_entropy_with_logits(logit, target, reduction="none") * where).sum() / where.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        window.append(loss.item() / np.log(2))
        if (step + 1) % 100 == 0:
            log.append(float(np.mean(window)))
            print(json.dumps({"step": step + 1, "bits_per_bit": round(log[-1], 4)}), flush=True)
            window = []
    return log


@torch.no_grad()
def cnn_bits(net: BitContext, chunk: np.ndarray) -> np.ndarray:
    """Ideal code length (bits) of each plane of a chunk under the network."""
    kk = chunk.shape[0]
    cost = np.zeros(kk)
    masks = pass_masks(*chunk.shape[2:])
    for t in range(chunk.shape[1]):
        s, prev = frame_signs(chunk, t)
        for k0 in range(0, kk, 16):
            ks = torch.arange(k0, min(kk, k0 + 16)).repeat_interleave(3)
            ps = torch.arange(3).repeat(len(ks) // 3)
            logit = net(inputs(s, prev, ks, ps, masks), ks, ps)
            nll = F.binary_cross_entropy_with_logits(logit, (s[ks] > 0).float(), reduction="none") * masks[ps]
            per = nll.sum(dim=(1, 2)).numpy() / np.log(2)
            np.add.at(cost, ks.numpy(), per)
    return cost


def summary(cost: np.ndarray, n_per_plane: int) -> dict:
    groups = {"0-7": slice(0, 8), "8-17": slice(8, 18), "18-31": slice(18, 32), "32-63": slice(32, 64)}
    out = {"all": round(float(cost.sum()) / (n_per_plane * len(cost)), 4)}
    for name, sl in groups.items():
        part = cost[sl]
        if len(part):
            out[name] = round(float(part.sum()) / (n_per_plane * len(part)), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", default="data/train", help="training videos and photos")
    ap.add_argument("--eval", default=None, help="a folder of eval clips, judged at 640x360")
    ap.add_argument("--eval-frames", type=int, default=33)
    ap.add_argument("--fit-clips", type=int, default=192)
    ap.add_argument("--held-out-clips", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--planes-per-step", type=int, default=16)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the report here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from vtoken.models import load_model
    from vtoken.train.data import DataConfig
    from vtoken.train.evaluate import clips_in, read_clip
    from vtoken.train.export import collect_bits

    model = load_model(args.model)
    kk = model.config.bits
    data = DataConfig(roots=[args.train], frames=17, size=256, scale_min=1.0, scale_max=1.5, cache_mib=600,
                      frame_strides=[1, 2, 3], seed=0)
    t0 = time.monotonic()
    with torch.no_grad():
        fit_chunks = collect_bits(model, data, args.fit_clips, seed=1101)
        held = collect_bits(model, data, args.held_out_clips, seed=1202)
    print(json.dumps({"collected_s": round(time.monotonic() - t0, 1), "chunk": list(fit_chunks[0].shape)}), flush=True)

    net = BitContext(kk, args.width)
    t0 = time.monotonic()
    curve = fit(net, fit_chunks, args.steps, args.planes_per_step, args.lr, seed=0)
    report = {"model": args.model, "fit_clips": len(fit_chunks), "steps": args.steps, "fit_s": round(time.monotonic() - t0),
              "params": sum(p.numel() for p in net.parameters()), "train_curve": curve}

    def judge(name: str, chunks: list[np.ndarray]) -> None:
        n = sum(c[0].size for c in chunks)
        coder = sum(coder_for(model).estimate(c) for c in chunks)  # each chunk coded alone, as a key chunk
        cnn = sum(cnn_bits(net, c) for c in chunks)
        report[name] = {"coder": summary(coder, n), "cnn": summary(cnn, n),
                        "cnn_over_coder": round(float(cnn.sum() / coder.sum()), 4)}
        print(json.dumps({name: report[name]}), flush=True)

    judge("held_out_training_clips", held)
    if args.eval:
        for clip in clips_in(args.eval):
            ref = read_clip(clip, args.eval_frames, (640, 360))
            video = torch.from_numpy(ref).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
            with torch.no_grad():
                bits = model.encode_bits(video).numpy()[0]
            judge(clip.stem, [bits])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
