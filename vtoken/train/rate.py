"""The rate term: what the encoder's bits would cost under a probability model that sees
what the decoder knows, so training trades bits for quality instead of ignoring rate.

A learned logit per (plane, context), as conditional probability models in learned
compression do (Mentzer et al. 2018), over a subset of the entropy coder's own contexts
(vtoken.entropy.contexts) that is cheap to compute on whole tensors:

    latent frame t >= 1   the co-located bit of the same plane in frame t-1 (2)
                          x the sum of its 4 neighbours there (5) x this position's bit of
                          plane k-1 (2)                                   20 contexts
    latent frame 0        the bit of plane k-1 here (2) x the sum of its 4 neighbours (5)
                                                                          10 contexts

With `motion` the temporal contexts read the previous frame moved by the coder's block
motion (vtoken.entropy.motion), so the encoder is not charged for a pan the coder follows.

With `crossplane` the logit also gets a learned linear score of the earlier planes' signs
at the same position and of their 4-neighbour sums in the same latent frame (weights strictly
lower triangular in the planes), the form of the shipped coder's cross-plane predictor
(vtoken.entropy.crossplane). With its predictor the coder spends about 0.43 bits per coded
bit on held-out training clips, without it about 0.63: a rate model without that term charges
the encoder for redundancy the coder removes anyway, and pushes where it pays nothing.

The cost of a bit b under probability p of a 1 is -log2(p if b else 1 - p). Contexts are
read from detached bits; the bit itself carries the LFQ straight-through gradient, so the
encoder is pushed toward the value its context predicts. Only kept planes are charged (a
plane dropped by nested dropout is not coded). The shipped coder does not use this table:
the export fits the coder's integer prior to the trained encoder's bits (prior.py), which
keeps decoding bit-exact on every machine."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtoken.entropy import motion as mo

N_TEMPORAL = 20
N_INTRA = 10


def _neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour sum over the last two axes, zero outside."""
    p = F.pad(x, (1, 1, 1, 1))
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def compensated_previous(b: torch.Tensor) -> torch.Tensor:
    """The previous latent frame of every predicted frame of bits b [B, K, T, H, W] (int64),
    moved by the coder's block motion: per BLOCK x BLOCK block of latent positions the shift
    (within +-RADIUS, edges replicated) under which the previous frame's first MOTION_PLANES
    planes best match the current frame's, the shortest among equal matches, as
    vtoken.entropy.motion picks it. The coder refines its field plane by plane from the
    planes below; one field from the same planes for every plane is close, and cheap.
    Returns [B, K, T-1, H, W]."""
    prev, cur = b[:, :, :-1], b[:, :, 1:]
    _, _, t, h, w = prev.shape
    r = mo.RADIUS
    padded = F.pad(prev.float(), (r, r, r, r, 0, 0), mode="replicate").to(b.dtype)
    shifted = torch.stack([padded[..., r + dy: r + dy + h, r + dx: r + dx + w] for dy, dx in mo.SHIFTS])
    m = mo.MOTION_PLANES
    mismatch = (shifted[:, :, :m] != cur[:, :m]).sum(dim=2)  # [S, B, T-1, H, W]
    hb, wb = -(-h // mo.BLOCK), -(-w // mo.BLOCK)
    mismatch = F.pad(mismatch, (0, wb * mo.BLOCK - w, 0, hb * mo.BLOCK - h))
    cost = mismatch.reshape(*mismatch.shape[:3], hb, mo.BLOCK, wb, mo.BLOCK).sum(dim=(4, 6))
    length = torch.from_numpy(mo.SHIFT_LENGTH).to(b.device).view(-1, 1, 1, 1, 1)
    cost = cost * mo.MISMATCH_WEIGHT + length  # the coder's rule (motion.best_field)
    field = cost.argmin(dim=0)  # [B, T-1, Hb, Wb]
    per_pos = field.repeat_interleave(mo.BLOCK, dim=-2).repeat_interleave(mo.BLOCK, dim=-1)[..., :h, :w]
    index = per_pos.unsqueeze(0).unsqueeze(2).expand(1, -1, prev.shape[1], -1, -1, -1)
    return shifted.gather(0, index).squeeze(0)


def contexts(bits: torch.Tensor, motion: bool = False) -> torch.Tensor:
    """Context index [B, K, T, H, W] (int64) of every bit of bits [B, K, T, H, W] in {0, 1};
    with `motion` the temporal contexts read the motion-compensated previous frame."""
    b = bits.detach().to(torch.int64)
    below = F.pad(b, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1]  # plane k-1 (0 for plane 0)
    intra = N_TEMPORAL + below[:, :, :1] * 5 + _neighbour_sum(below[:, :, :1])
    if b.shape[2] == 1:
        return intra
    prev = compensated_previous(b) if motion else b[:, :, :-1]
    temporal = prev * 10 + _neighbour_sum(prev) * 2 + below[:, :, 1:]
    return torch.cat([intra, temporal], dim=2)


class BitRateModel(nn.Module):
    """Learned P(bit = 1 | plane, context); forward gives the estimated bits of a batch."""

    def __init__(self, planes: int, crossplane: bool = False, motion: bool = False):
        super().__init__()
        self.motion = motion
        self.logits = nn.Parameter(torch.zeros(planes, N_TEMPORAL + N_INTRA))
        self.cross = None
        if crossplane:
            # [signs, neighbour sums] x plane k x plane j; the mask keeps j < k only
            self.cross = nn.Parameter(torch.zeros(2, planes, planes))
            self.register_buffer("mask", torch.tril(torch.ones(planes, planes), diagonal=-1), persistent=False)

    def _cross_score(self, signs: torch.Tensor) -> torch.Tensor:
        """Score [B, K, T, H, W] of every plane from the detached signs of the planes below it."""
        w = self.cross * self.mask
        return (torch.einsum("kj,bjthw->bkthw", w[0], signs)
                + torch.einsum("kj,bjthw->bkthw", w[1], _neighbour_sum(signs)))

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        """Total estimated bits of the kept planes of straight-through `quantized`
        [B, K, T', H', W'] (+-1 on kept planes, 0 on dropped ones), summed over the batch."""
        return self.frame_bits(quantized).sum()

    def frame_bits(self, quantized: torch.Tensor) -> torch.Tensor:
        """Estimated bits [T'] of each latent frame of `quantized`, summed over the batch,
        the planes and the positions: frame 0 is the key frame, the rest are predicted."""
        return self.sample_frame_bits(quantized).sum(dim=0)

    def sample_frame_bits(self, quantized: torch.Tensor) -> torch.Tensor:
        """Estimated bits [B, T'] of each sample's latent frames, summed over the planes and
        the positions."""
        with torch.autocast(device_type=quantized.device.type, enabled=False):
            q = quantized.float()
            kept = (q.detach() != 0).float()
            bits = (q + 1) / 2
            ctx = contexts(bits.detach() > 0.5, motion=self.motion)
            k = q.shape[1]
            plane = torch.arange(k, device=q.device).view(1, k, 1, 1, 1)
            logit = self.logits[plane.expand_as(ctx), ctx]
            if self.cross is not None:
                # dropped planes read as 0; they lie above every kept plane (nested dropout)
                logit = logit + self._cross_score(q.detach())
            # -log2 p(b): softplus(-l) for b = 1, softplus(l) for b = 0, linear in b
            nats = bits * F.softplus(-logit) + (1 - bits) * F.softplus(logit)
            return (nats * kept).sum(dim=(1, 3, 4)) / torch.log(torch.tensor(2.0))
