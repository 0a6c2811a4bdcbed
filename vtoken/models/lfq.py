"""Lookup-Free Quantization (MAGVIT-v2): every latent channel becomes one sign bit.

Bit order, defined here once (DEVELOPERS.md): channel k of the latent is bit-plane k, plane 0
is the most important (it survives every truncation), and the token index of a position is
sum_k bit_k * 2**k, i.e. plane 0 is the LEAST significant bit (as in the paper). A bit is 1
where the quantized value is +1, i.e. where z >= 0 (z == 0 counts as +1)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from .config import MAX_TOKEN_BITS


# -- bit order: the only place the token index is computed ------------------------------------
def _place(values, dim: int, ndim: int):
    """Reshape 1-D `values` so it broadcasts along `dim` of an `ndim`-D array."""
    shape = [1] * ndim
    shape[dim] = -1
    return values.reshape(shape)


def bits_to_indices(bits, dim: int = -1):
    """Token index = sum_k bits[k] * 2**k along `dim` (plane 0 least significant).
    Works on torch tensors (-> int64 tensor) and numpy arrays (-> int64 array)."""
    k = bits.shape[dim]
    if k > MAX_TOKEN_BITS:
        raise ValueError(f"{k} bits do not fit an int64 token index; allowed: at most {MAX_TOKEN_BITS}")
    if isinstance(bits, torch.Tensor):
        weights = _place(torch.pow(2, torch.arange(k, device=bits.device, dtype=torch.int64)), dim, bits.ndim)
        return (bits.to(torch.int64) * weights).sum(dim)
    bits = np.asarray(bits)
    weights = _place(np.left_shift(np.int64(1), np.arange(k, dtype=np.int64)), dim, bits.ndim)
    return (bits.astype(np.int64) * weights).sum(axis=dim)


def indices_to_bits(indices, bits: int, dim: int = -1):
    """Inverse of bits_to_indices: uint8 {0,1} with a new axis of size `bits` at `dim`."""
    if isinstance(indices, torch.Tensor):
        idx = indices.to(torch.int64).unsqueeze(dim)
        shifts = _place(torch.arange(bits, device=idx.device, dtype=torch.int64), dim, idx.ndim)
        return ((idx >> shifts) & 1).to(torch.uint8)
    idx = np.expand_dims(np.asarray(indices).astype(np.int64), dim)
    shifts = _place(np.arange(bits, dtype=np.int64), dim, idx.ndim)
    return ((idx >> shifts) & 1).astype(np.uint8)


def plane_mask(planes, bits: int, batch: int, device) -> torch.Tensor:
    """[B, K, 1, 1, 1] mask that keeps planes < planes (int, or per-sample LongTensor [B])."""
    if isinstance(planes, torch.Tensor):
        planes = planes.to(device=device, dtype=torch.int64).reshape(-1, 1)
        if planes.shape[0] not in (1, batch):
            raise ValueError(f"planes has {planes.shape[0]} entries; allowed: 1 or the batch size {batch}")
    else:
        planes = int(planes)
        if not 0 <= planes <= bits:
            raise ValueError(f"planes={planes} is out of range; allowed: 0..{bits}")
    mask = torch.arange(bits, device=device).reshape(1, -1) < planes
    return mask.reshape(mask.shape[0], bits, 1, 1, 1)


# -- the quantizer ------------------------------------------------------------------------------
class LFQLosses(NamedTuple):
    commitment: torch.Tensor  # mean (z - sg[q])^2
    entropy: torch.Tensor  # per_sample_entropy - diversity_gamma * codebook_entropy (nats)
    per_sample_entropy: torch.Tensor  # E[H(p(q|z))], summed over bit sub-groups
    codebook_entropy: torch.Tensor  # H(E[p(q|z)]), summed over bit sub-groups
    total: torch.Tensor  # commitment_weight * commitment + entropy_weight * entropy


class LFQOutput(NamedTuple):
    quantized: torch.Tensor  # [B, K, ...] in {-1, +1} (0 on dropped planes), straight-through
    indices: torch.Tensor  # [B, ...] int64 token indices of the first min(K, 62) bits
    losses: LFQLosses | None  # None unless requested (or training)


class LFQ(nn.Module):
    """q = sign(z) per channel, in fp32 with autocast disabled (half-precision entropy terms
    are the classic source of NaNs in LFQ code). Channel dim is 1: z is [B, K, ...]."""

    def __init__(
        self,
        *,
        bits: int,
        entropy_group_size: int = 9,
        inv_temperature: float = 100.0,
        diversity_gamma: float = 1.0,
        commitment_weight: float = 0.25,
        entropy_weight: float = 0.1,
    ):
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits={bits}; allowed: 1 or more")
        if not 1 <= entropy_group_size <= 16:
            raise ValueError(f"entropy_group_size={entropy_group_size}; allowed: 1..16")
        self.bits = bits
        self.inv_temperature = inv_temperature
        self.diversity_gamma = diversity_gamma
        self.commitment_weight = commitment_weight
        self.entropy_weight = entropy_weight
        # Factorized entropy: the 2**K codebook is intractable for K = 18, so the penalty is
        # computed independently on consecutive groups of <= entropy_group_size bits.
        self.groups = [
            (start, min(start + entropy_group_size, bits)) for start in range(0, bits, entropy_group_size)
        ]
        for n, (start, stop) in enumerate(self.groups):
            g = stop - start
            codes = indices_to_bits(torch.arange(2**g), g, dim=-1).float() * 2 - 1  # [2**g, g], LSB first
            self.register_buffer(f"codebook{n}", codes, persistent=False)

    def forward(self, z: torch.Tensor, planes=None, return_losses: bool | None = None,
                signs: Callable[[torch.Tensor], torch.Tensor] | None = None) -> LFQOutput:
        """`signs` (training): maps the detached z to the +-1 values to send in place of
        sign(z), e.g. the encoder's hysteresis (vtoken.train.held); the gradient stays the
        straight-through identity."""
        if z.shape[1] != self.bits:
            raise ValueError(f"LFQ expects {self.bits} channels in dim 1, got shape {tuple(z.shape)}")
        if return_losses is None:
            return_losses = self.training
        in_dtype = z.dtype
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            hard = torch.where(z >= 0, 1.0, -1.0) if signs is None else signs(z.detach())
            # Straight-through: forward values exactly +-1, gradient of identity.
            quantized = hard + (z - z.detach())
            indices = bits_to_indices(hard[:, :MAX_TOKEN_BITS] > 0, dim=1)
            losses = self._losses(z, hard) if return_losses else None
            if planes is not None:
                quantized = quantized * plane_mask(planes, self.bits, z.shape[0], z.device)
        return LFQOutput(quantized.to(in_dtype), indices, losses)

    def _losses(self, z: torch.Tensor, hard: torch.Tensor) -> LFQLosses:
        commitment = torch.mean((z - hard) ** 2)
        flat = z.movedim(1, -1).reshape(-1, self.bits)
        per_sample = z.new_zeros(())
        codebook = z.new_zeros(())
        for n, (start, stop) in enumerate(self.groups):
            codes = getattr(self, f"codebook{n}")
            logits = 2 * self.inv_temperature * flat[:, start:stop] @ codes.t()
            logp = torch.log_softmax(logits, dim=-1)
            p = logp.exp()
            per_sample = per_sample - (p * logp).sum(-1).mean()
            avg = p.mean(0)
            codebook = codebook - (avg * torch.log(avg.clamp_min(1e-12))).sum()
        entropy = per_sample - self.diversity_gamma * codebook
        total = self.commitment_weight * commitment + self.entropy_weight * entropy
        return LFQLosses(commitment, entropy, per_sample, codebook, total)
