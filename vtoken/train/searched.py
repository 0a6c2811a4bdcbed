"""The encoder learns what the encoder's search finds (amortised search).

`vtoken encode --refine N` (codec/refine.py) flips the encoder's bits by a few Adam steps
through the sign's straight-through estimator against the decoder, and buys a third fewer
bytes at equal LPIPS, at 10-300x the encode time. In training the same search runs on each
step's clip, at the step's plane count, from the encoder's detached latents; the encoder is
then pulled toward the signs the search chose (a hinge on z), so the default encode sends
bits closer to the searched ones at no cost at encode time. The search weighs the whole clip
at once (the codec searches one latent frame after another): in training a flip's effect on
the later frames is counted too. Measured (model card, levers 72 and 72b): 400 steps from the
default at lr 5e-5 left the eval curves within the noise and the share of bits the search
flips unchanged (3.6 %); a 4x lr made the encoder's own bits worse. Kept as a training option,
off by default, for longer or GPU runs."""

from __future__ import annotations

import torch

from vtoken.codec.refine import sign_search
from vtoken.models.lfq import plane_mask


def search_signs(decoder, video: torch.Tensor, z: torch.Tensor, planes, steps: int, lr: float,
                 l1: float, perceptual: float, lpips=None) -> torch.Tensor:
    """Signs +-1 [B, K, T', H', W'] after `steps` Adam steps of lr `lr` on u (starting at the
    detached latents z) of l1 x L1 + perceptual x LPIPS (when `lpips` is given) between
    decoder(sign(u) masked to `planes`) and `video` (the codec's sign_search); the gradient
    reaches u alone (the decoder's weights collect none). Planes at or above a sample's count
    keep z's signs."""
    z = z.detach().float()
    mask = _kept(z, planes)
    u = sign_search(z, decoder, video.float(), mask, steps, lr, l1, perceptual, lpips)
    u = torch.where(mask > 0, u, z)
    return torch.where(u >= 0, 1.0, -1.0)


def search_loss(z: torch.Tensor, target: torch.Tensor, planes, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hinge, flips): the mean over the kept bits of max(0, margin - z * target), which moves
    a bit the search flipped across the boundary and one it kept away from it; flips: the share
    of kept bits whose target differs from sign(z) (detached, for the log)."""
    mask = _kept(z, planes).expand_as(z)
    kept = mask.sum().clamp_min(1.0)
    hinge = ((margin - z.float() * target).clamp_min(0) * mask).sum() / kept
    flips = (((z.detach() >= 0).float() * 2 - 1 != target).float() * mask).sum() / kept
    return hinge, flips


def _kept(z: torch.Tensor, planes) -> torch.Tensor:
    """1.0 where a bit is kept at the sample's plane count (planes None: all), broadcastable to z."""
    if planes is None:
        return torch.ones((1, z.shape[1], 1, 1, 1), device=z.device)
    return plane_mask(planes, z.shape[1], z.shape[0], z.device).float()
