"""The encoder's search: test-time refinement of a chunk's bits against the decoder (no
format change: the decoder reads bits, whatever chose them).

The encoder network predicts each latent in one pass; nothing tells it which signs the
decoder would turn into the best frames. Here, with the decoder fixed, each latent frame's
values u (starting from the encoder's z, or a small value of the held sign where the
hysteresis overrode it) take `steps` steps on the loss the model was trained with, L1 +
LPIPS of the decoded frames against the source (or L1 alone: defaults.REFINE_LOSSES), with
the planes the stream keeps: the first steps flip the bits whose flips the loss's gradient
says gain most (flip_search), the others move u by Adam through the sign's straight-through
estimator (sign_search; search_split, defaults.REFINE_METHOD). The signs of u are the bits
sent. Each latent frame is refined in turn, decoded from the refined bits before it (the
decoder's causal state as the stream gives it), so memory stays that of a slice (slices.py);
a latent frame's effect on the frames after its own is not weighed. The search may run in
bf16 (precision.py: where the hardware has it, by default); the decoder's state it moves on
with stays fp32, as a decoder has it.

Measured on the eval clips (33 frames at 640x360, benchmarks/README.md): the flips cost bytes
(the coder predicts the encoder's signs better than the refined ones) but buy more LPIPS than
more planes would. The cost is time: each step is a decode and its backward pass, plus LPIPS
(on every other frame of a slice per step by default: defaults.REFINE_LPIPS_STRIDE)."""

from __future__ import annotations

import numpy as np

from .. import defaults
from .frames import pad_frames, to_tensor
from .precision import autocast
from .slices import frame_range, latent_pieces, latents_per_call

# A held bit's starting value: its sign, at a size the first steps can reverse.
HELD_START = 0.05
# The flip search's floor on how unsure a bit was (|u| + FLIP_EPS divides its gain): a bit at
# zero is not infinitely cheap to flip. HELD_START's size, as held bits start there.
FLIP_EPS = 0.05


def loss_weights(loss: str) -> tuple[float, float]:
    """(L1 weight, LPIPS weight) of the search's loss `loss` (defaults.REFINE_LOSSES), read from
    defaults when asked, so a probe may change them."""
    if loss not in defaults.REFINE_LOSSES:
        raise ValueError(f"refinement loss must be one of {', '.join(defaults.REFINE_LOSSES)}, got {loss!r}")
    return defaults.REFINE_L1, defaults.REFINE_LPIPS if loss == "lpips" else 0.0


def search_method() -> str:
    """The search's method as defaults.REFINE_METHOD is when asked ("flip" or "adam"); the stream
    header records it."""
    if defaults.REFINE_METHOD not in defaults.REFINE_METHODS:
        raise ValueError(f"search method must be one of {', '.join(defaults.REFINE_METHODS)}, "
                         f"got {defaults.REFINE_METHOD!r}")
    return defaults.REFINE_METHOD


def search_split(steps: int) -> tuple[int, int]:
    """(flip steps, Adam steps) of a search of `steps` steps by the method defaults hold: the
    flip method flips for up to REFINE_FLIP_STEPS steps and moves by Adam for the rest."""
    if search_method() == "adam":
        return 0, int(steps)
    flips = min(int(steps), int(defaults.REFINE_FLIP_STEPS))
    return flips, int(steps) - flips


def flip_share(steps: int) -> float:
    """The share of the kept bits each of a flip search's `steps` steps flips (defaults as they
    are when asked): REFINE_FLIP_FRACTION, less where the steps would flip more than
    REFINE_FLIP_TOTAL in all."""
    return min(float(defaults.REFINE_FLIP_FRACTION), float(defaults.REFINE_FLIP_TOTAL) / max(int(steps), 1))


def refine_method_fields(steps: int) -> dict:
    """What the stream header records of the search's method for `steps` steps (the decoder
    needs none of it)."""
    flips, moves = search_split(steps)
    out = {"refine_method": search_method()}
    if flips:
        out.update(refine_flip_steps=flips, refine_flip_fraction=flip_share(flips))
    if moves:
        out["refine_lr"] = float(defaults.REFINE_LR)
    return out


def scored_stride(steps: int, stride: int | None = None) -> int:
    """The LPIPS stride a search of `steps` steps runs at: `stride` (defaults.REFINE_LPIPS_STRIDE
    as it is when asked, for None) cut to the steps, so that every frame is scored at least once.
    sign_search runs at it; the stream header records it."""
    return min(int(defaults.REFINE_LPIPS_STRIDE if stride is None else stride), int(steps))


class BitRefiner:
    """Refines the bits of one stream's chunks, in order. One per stream: it keeps the
    decoder's causal state of what it has refined so far."""

    def __init__(self, model, steps: int, device, lr: float | None = None, rate_weight: float = 0.0,
                 loss: str = defaults.REFINE_LOSS, precision: str = "fp32"):
        from ..metrics.lpips import get_lpips

        if steps < 0 or rate_weight < 0:
            raise ValueError(f"refinement steps and rate weight must be >= 0, got {steps}, {rate_weight}")
        # lr None: defaults.REFINE_LR as it is when the refiner is made (a probe may set it, and
        # the method and the flips' fraction likewise)
        self.model, self.steps, self.device = model, int(steps), device
        self.lr = float(defaults.REFINE_LR if lr is None else lr)
        self.split = search_split(self.steps)  # (flip steps, Adam steps), by the method defaults hold
        self.fraction = flip_share(self.split[0])
        self.lpips_stride = int(defaults.REFINE_LPIPS_STRIDE)
        self.rate_weight = float(rate_weight)
        self.l1, self.perceptual = loss_weights(loss)
        self.precision = precision  # of the search's decodes and LPIPS ('fp32' or 'bf16'; precision.py)
        self.lpips = get_lpips(device) if self.perceptual > 0 else None
        self.state = None  # the decoder's StreamState after the refined chunks so far (a key chunk starts it)

    def refine(self, frames: np.ndarray, z: np.ndarray, bits: np.ndarray, key: bool, planes: int,
               p1: np.ndarray | None = None, limit: np.ndarray | None = None) -> np.ndarray:
        """Refined uint8 bits [K, T', H', W'] of the chunk whose frames the model saw as
        `frames` (uint8 [n, H, W, 3]: a coarse grid's coded frames, a fine grid's repeated
        ones), given its latents z [K, T', H', W'] and the bits the hysteresis made of them, for
        a stream that keeps `planes` planes (planes above are left as they were). On a coarse
        grid the frames the decoder blends between coded ones are not weighed. `p1`: the coder's
        probability of a 1 for each kept bit ([planes, T', H', W'], BitplaneCoder.probabilities
        of the unrefined bits), for the rate term (rate_weight > 0). `limit` (uint8 [T', H', W'],
        a plane map, plane_choice.py): at each position only the planes below its count are
        sent, so only they are searched, and the decoder sees the others as absent."""
        import torch

        from ..models.stream import StreamState

        cfg = self.model.config
        if key:
            self.state = StreamState()
        n, h, w, _ = frames.shape
        target = to_tensor(pad_frames(frames, cfg.temporal_factor, cfg.spatial_factor, continuing=not key), self.device)
        start = np.where(bits == (z >= 0), np.abs(z), HELD_START) * (bits.astype(np.float32) * 2 - 1)
        out = bits.copy()
        rank = torch.arange(bits.shape[0], device=self.device).view(1, -1, 1, 1, 1)
        mask = (rank < planes).float()
        lim = None if limit is None else torch.from_numpy(np.ascontiguousarray(limit, dtype=np.int64))[None]
        for a, b in latent_pieces(bits.shape[1], latents_per_call(self.device)):
            first, stop = frame_range(a, b, key, cfg.temporal_factor)
            real = max(0, min(stop, n) - first)  # the slice's frames that are the input's, not padding
            u = torch.tensor(start[None, :, a:b], device=self.device, dtype=torch.float32)
            x = target[:, :, first:first + real, :h, :w]
            slope = None if p1 is None or not self.rate_weight else self._rate_slope(p1[:planes, a:b], bits[:planes, a:b])
            rate = None if slope is None else (lambda q: (slope * (q[0, :planes] + 1) / 2).sum())
            piece = mask if lim is None else mask * (rank < lim[:, None, a:b].to(self.device)).float()
            decode = lambda q: self.model.decode(q, state=self.state.copy())[:, :, :real, :h, :w]  # noqa: E731
            flips, moves = self.split if real else (0, 0)
            with autocast(self.device, self.precision):
                if flips:
                    u = flip_search(u, decode, x, piece, flips, self.fraction, self.l1, self.perceptual, self.lpips,
                                    rate, self.lpips_stride)
                if moves:
                    u = sign_search(u, decode, x, piece, moves, self.lr, self.l1, self.perceptual, self.lpips, rate,
                                    self.lpips_stride)
            out[:, a:b] = (u[0] >= 0).to(torch.uint8).cpu().numpy()
            with torch.inference_mode():  # the decoder's state moves on with the bits sent
                self.model.decode_bits(torch.from_numpy(out[None, :, a:b]).to(self.device), planes=planes,
                                       state=self.state, limit=None if lim is None else lim[:, a:b])
        return out

    def _rate_slope(self, p1: np.ndarray, bits: np.ndarray):
        """What a 1 instead of a 0 adds to the loss at each kept bit of a slice: its extra code
        length under the coder's probabilities, in doublings of the slice's unrefined code
        length, times rate_weight (the loss one doubling of the rate is worth). Linear in the
        bits: a flip's effect on its neighbours' contexts is not counted."""
        import torch

        p = np.clip(p1, 1e-6, 1 - 1e-6)
        base = -np.log2(np.where(bits == 1, p, 1 - p)).sum()  # the slice's code length, bits
        slope = np.log2((1 - p) / p) * (self.rate_weight / (max(base, 1.0) * np.log(2)))
        return torch.tensor(slope, device=self.device, dtype=torch.float32)


def sign_search(u, decode, x, mask, steps: int, lr: float, l1: float, perceptual: float, lpips=None,
                extra=None, lpips_stride: int = 1):
    """The search by Adam, shared with training (vtoken.train.searched): `steps` Adam steps of lr
    `lr` on the values u [B, K, T', H', W'] through the sign's straight-through estimator (forward
    sign(u) x mask, backward the identity), on l1 x L1 + perceptual x LPIPS (when `lpips` is
    given) of decode(q) against the video x [B, 3, T, H, W], plus extra(q) when given. With
    `lpips_stride` s > 1, step i takes LPIPS only on the frames t with t mod s = i mod s (every
    frame when none has that remainder), s cut to the steps (scored_stride). Returns the final
    values, detached; only u gets a gradient (the decoder's weights are shared and must not
    collect any)."""
    import torch

    loss_at = _search_loss(decode, x, l1, perceptual, lpips, extra, steps, lpips_stride)
    u = u.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for step in range(steps):
        q = (u + (torch.where(u >= 0, 1.0, -1.0) - u).detach()) * mask
        (u.grad,) = torch.autograd.grad(loss_at(q, step), [u])
        opt.step()
    return u.detach()


def flip_search(u, decode, x, mask, steps: int, fraction: float, l1: float, perceptual: float, lpips=None,
                extra=None, lpips_stride: int = 1):
    """The search by flips, the codec's (defaults.REFINE_METHOD): the same loss as sign_search,
    its gradient g at the signs b = sign(u) from one decode and its backward pass per step. To
    first order, flipping b_i lowers the loss by 2 b_i g_i; each step flips, among the kept bits
    where that is positive, the `fraction` of the kept bits with the largest b_i g_i / (|u_i| +
    FLIP_EPS): the gain weighed by how unsure the encoder was of the bit. A bit flips at most
    once (flipped back in a later step, the search measured worse). Returns values whose signs
    are the bits found, detached.

    Adam's steps move every value by about lr, so only bits the encoder was unsure of (|u| under
    a few lr) can flip, whatever their gain; the flips choose by both, and on the eval clips 1
    flip step found about what 4 Adam steps did (benchmarks/results/refine_flip_cpu.md)."""
    import torch

    loss_at = _search_loss(decode, x, l1, perceptual, lpips, extra, steps, lpips_stride)
    u = u.detach().clone()
    b = torch.where(u >= 0, 1.0, -1.0)
    free = (mask > 0).expand_as(b).clone()  # kept bits not flipped yet
    count = max(1, round(fraction * int(free.sum())))
    for step in range(steps):
        q = (b * mask).requires_grad_(True)
        (g,) = torch.autograd.grad(loss_at(q, step), [q])
        gain = b * g.float()
        score = torch.where(free & (gain > 0), gain / (u.abs() + FLIP_EPS), torch.zeros_like(gain))
        top = torch.topk(score.flatten(), min(count, score.numel())).indices
        flip = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
        flip[top] = True
        flip = flip.view_as(score) & (score > 0)
        b, u, free = torch.where(flip, -b, b), torch.where(flip, -u, u), free & ~flip
    return torch.where(u == 0, b * FLIP_EPS, u).detach()


def _search_loss(decode, x, l1: float, perceptual: float, lpips, extra, steps: int, lpips_stride: int):
    """loss_at(q, step): the searches' loss of the signs q at step `step` (sign_search), with the
    source's LPIPS features computed once."""
    import torch

    from ..metrics.lpips import fold_frames

    source_features = None
    if lpips is not None and perceptual > 0 and steps > 0:
        with torch.no_grad():  # the same at every step: computed once
            source_features = lpips.features(fold_frames(x))
    b, t = x.shape[0], x.shape[2]
    stride = scored_stride(steps, lpips_stride)

    def loss_at(q, step: int):
        y = decode(q).float()
        loss = l1 * (y - x).abs().mean()
        if source_features is not None:
            idx = _scored_frames(t, step, stride, x.device)
            if idx is None:
                ours, theirs = lpips.features(fold_frames(y)), source_features
            else:  # fold_frames puts clip j's frame i at row j * t + i
                rows = (torch.arange(b, device=x.device)[:, None] * t + idx[None, :]).reshape(-1)
                ours = lpips.features(fold_frames(y, idx))
                theirs = [f.index_select(0, rows) for f in source_features]
            loss = loss + perceptual * lpips.distance(ours, theirs).mean()
        if extra is not None:
            loss = loss + extra(q)
        return loss

    return loss_at


def _scored_frames(t: int, step: int, stride: int, device):
    """The frames of t that step `step` scores with LPIPS at `stride` (sign_search): those whose
    index has the step's remainder mod `stride`; None: all of them."""
    import torch

    if stride <= 1:
        return None
    idx = torch.nonzero(torch.arange(t, device=device) % stride == step % stride).flatten()
    return None if idx.numel() in (0, t) else idx
