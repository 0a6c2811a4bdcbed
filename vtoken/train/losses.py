"""Training losses of the tokenizer (MAGVIT-v2 recipe, DESIGN.md weights by default).

total = l1 * |x - x̂| + l2 * (x - x̂)^2 + perceptual * LPIPS(x, x̂)
      + commitment * LFQ commitment + entropy(step) * LFQ entropy penalty
      + adversarial * hinge generator loss   (after `gan_start` steps, off by default; the
        discriminator itself trains from `disc_start`)
      + rate * estimated bits per pixel of the kept planes (rate.py; off by default)
      + hold * the hysteresis hinge on predicted latent frames (`hold_loss`; off by default)

All terms are computed in fp32 (autocast off): the reconstruction is cast up first, and the
LFQ terms come out of the quantizer in fp32 already. Nested bit-plane dropout is a sampling
rule for the model's `planes` argument (`sample_planes`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtoken.errors import UsageError
from vtoken.metrics.lpips import fold_frames
from .fields import known_fields


@dataclass
class LossConfig:
    l1: float = 5.0
    l2: float = 0.0
    perceptual: float = 0.1
    perceptual_frames: int = 0  # LPIPS on this many random frames per clip (0 = all frames)
    # Weight each frame's L1 and LPIPS by (its L1 / its clip's mean L1) ** frame_focus, detached
    # and renormalised to mean 1 per clip: frames the model reconstructs worst within a clip
    # pull harder (with fast motion, the first frame of each latent frame). 0 = all alike.
    # LPIPS on `perceptual_frames` random frames keeps their clip-level weights (mean 1 only
    # in expectation over the draw).
    frame_focus: float = 0.0
    commitment: float = 0.25
    entropy: float = 0.1
    # Entropy weight annealed linearly from `entropy` to `entropy * entropy_final_ratio`
    # over `entropy_anneal_steps` (0 = constant).
    entropy_anneal_steps: int = 0
    entropy_final_ratio: float = 0.0
    rate: float = 0.0  # weight of the estimated bits per pixel (rate.py); 0 = the encoder ignores rate
    rate_crossplane: bool = False  # the rate model also reads the earlier planes, as the coder does
    rate_motion: bool = False  # its temporal contexts follow the coder's block motion
    # The rate of predicted latent frames (t >= 1) is charged this many times the key frame's:
    # a codec spends its bits where they carry forward (the causal decoder sees every earlier
    # latent frame), and a predicted bit that repeats its context costs the coder little.
    # bpp_est stays the unweighted estimate.
    rate_predicted: float = 1.0
    # A variable-rate objective: a sample that keeps k planes is charged its rate
    # min(1, rate_plane_ref / k) times (0 = every count alike). One rate weight for every
    # count prices a bit of the 64th plane as one of the 4th, so the top planes, which buy
    # less distortion per bit, are squeezed toward carrying nothing; a codec's higher rate
    # points are optimised at a smaller lambda. bpp_est stays the unweighted estimate. At 16
    # (lever 84) the curve moved up along itself, not below it.
    rate_plane_ref: int = 0
    # Hysteresis the encoder learns: a bit of a predicted latent frame whose abs(z) is below
    # `hold_margin` is pushed to the side of the previous latent frame's bit (hold_loss). On
    # still training clips 35-54 % of the bits that change between latent frames had
    # abs(z) < 0.5: noise at the sign boundary, which the coder pays a flip for. The rate
    # term's straight-through gradient does not know how close a bit is to flipping.
    hold: float = 0.0
    hold_margin: float = 0.5
    # The pull of the encoder's latents toward the signs the encoder's search finds (loop.py's
    # search_steps, searched.py): a hinge max(0, search_margin - z * target) over the kept bits.
    search: float = 0.0
    search_margin: float = 0.5
    adversarial: float = 0.0  # 0.1 in the paper; off by default (measure before enabling)
    gan_start: int = 2000  # generator gets the adversarial term only after this many steps
    # The discriminator trains from this step (-1 = from gan_start). Warm-starting a trained
    # tokenizer, an earlier start lets it learn real from fake before its gradient reaches the
    # generator: a random discriminator's gradient is noise.
    disc_start: int = -1
    lecam: float = 0.001
    disc_channels: int = 32
    # The discriminator sees a random window of this many consecutive frames per clip (0 = all).
    # At 9 frames of 192 px its full-clip cost is about 5x the tokenizer's step on a CPU.
    disc_frames: int = 0
    disc_lr: float = 1e-4
    # Nested plane dropout: with probability `all_planes_prob` keep every plane, otherwise
    # keep k planes, k uniform in [min_planes, K] ("uniform"), or log-uniform ("log": k =
    # floor(exp(u)), about as likely in each doubling, so every plane head of a model with them
    # trains about as often, 10-17 % of the steps each for 7 heads; uniform gives the head of
    # 33-64 planes half the steps or more).
    plane_dropout: bool = True
    all_planes_prob: float = 0.25
    min_planes: int = 1
    plane_sampling: str = "uniform"

    def __post_init__(self):
        if self.plane_sampling not in ("uniform", "log"):
            raise UsageError(f"losses.plane_sampling={self.plane_sampling!r}; allowed: 'uniform', 'log'")
        if self.rate < 0 or self.rate_predicted < 0:
            raise UsageError(f"losses.rate ({self.rate}) and losses.rate_predicted "
                             f"({self.rate_predicted}) must be >= 0")
        if self.rate_plane_ref < 0:
            raise UsageError(f"losses.rate_plane_ref ({self.rate_plane_ref}) must be >= 0")
        if self.search < 0 or self.search_margin <= 0:
            raise UsageError(f"losses.search ({self.search}) must be >= 0 and losses.search_margin "
                             f"({self.search_margin}) > 0")
        if self.hold < 0 or self.hold_margin <= 0:
            raise UsageError(f"losses.hold ({self.hold}) must be >= 0 and losses.hold_margin "
                             f"({self.hold_margin}) > 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LossConfig":
        return cls(**known_fields(cls, data, "loss"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def entropy_weight(self, step: int) -> float:
        if self.entropy_anneal_steps <= 0:
            return self.entropy
        a = min(1.0, step / self.entropy_anneal_steps)
        return self.entropy * (1 - a + a * self.entropy_final_ratio)


def sample_planes(batch: int, bits: int, cfg: LossConfig, rng: torch.Generator, device) -> torch.Tensor | None:
    """Per-sample number of kept planes [B] (LongTensor), or None when dropout is off."""
    if not cfg.plane_dropout:
        return None
    lo = max(1, min(cfg.min_planes, bits))
    if cfg.plane_sampling == "log":  # floor(exp(u)), u uniform in [log lo, log(bits + 1))
        u = torch.rand(batch, generator=rng, dtype=torch.float64)
        k = torch.exp(math.log(lo) + u * (math.log(bits + 1) - math.log(lo))).floor().long().clamp(lo, bits)
    else:
        k = torch.randint(lo, bits + 1, (batch,), generator=rng)
    keep_all = torch.rand(batch, generator=rng) < cfg.all_planes_prob
    return torch.where(keep_all, torch.full_like(k, bits), k).to(device)


def rate_scale(quantized: torch.Tensor, ref: int) -> torch.Tensor:
    """min(1, ref / k) [B] for each sample of straight-through `quantized` [B, K, ...], k its
    kept planes (nested dropout leaves the dropped ones 0 everywhere)."""
    kept = (quantized.detach().flatten(2) != 0).any(dim=2).sum(dim=1).clamp(min=1)
    return (ref / kept.float()).clamp(max=1.0)


# -- perceptual -------------------------------------------------------------------------------
def load_lpips(device) -> nn.Module:
    """The project's offline LPIPS (AlexNet, v0.1), frozen. Raises UsageError with the fix
    when the weights were not built."""
    try:
        from vtoken.metrics.lpips import LPIPS
    except ImportError as exc:  # the module is part of the package; a missing one is a broken install
        raise UsageError(f"vtoken.metrics.lpips is unavailable ({exc}); set losses.perceptual to 0") from exc
    try:
        model = LPIPS()
    except FileNotFoundError as exc:
        raise UsageError(
            "LPIPS weights are missing: run `python -m vtoken.metrics.build_lpips_weights` "
            "or set losses.perceptual to 0"
        ) from exc
    model.eval().requires_grad_(False)
    return model.to(device)


def frame_weights(frame_error: torch.Tensor, focus: float) -> torch.Tensor | None:
    """[B, T] per-frame errors -> [B, T] weights (error / clip mean) ** focus, mean 1 per clip;
    None when focus is 0 (every frame weighs 1)."""
    if focus == 0:
        return None
    w = (frame_error / frame_error.mean(dim=1, keepdim=True).clamp_min(1e-8)).clamp_min(1e-8) ** focus
    return w / w.mean(dim=1, keepdim=True)


def hold_loss(z: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hinge, flips) of pre-quantization latents z [B, K, T', H', W']. hinge: the mean over
    the bits of latent frames t >= 1 of (margin - z_t * s_{t-1}) where abs(z_t) < margin, s
    the previous latent frame's sign (detached), 0 elsewhere: a bit near the boundary moves
    to the previous frame's side (one that agrees moves away from the boundary), a bit that
    changed by more than the margin is left to the other terms. flips: the share of bits that
    differ from the co-located previous bit (detached, for the log)."""
    if z.shape[2] < 2:
        zero = z.new_zeros(())
        return zero, zero
    prev = torch.where(z[:, :, :-1] >= 0, 1.0, -1.0).detach()
    cur = z[:, :, 1:]
    band = (cur.abs() < margin).detach()
    hinge = ((margin - cur * prev) * band).mean()
    flips = ((cur >= 0) != (prev > 0)).float().mean().detach()
    return hinge, flips


# -- adversarial ------------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """Small 3D patch discriminator (StyleGAN-ish blocks, no norm): 4 strided stages that
    see a few frames at a time, one logit per space-time patch."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv3d(in_channels, c, 3, padding=1), nn.LeakyReLU(0.2)]
        widths = [c, 2 * c, 4 * c, 4 * c]
        for i in range(3):
            layers += [
                nn.Conv3d(widths[i], widths[i + 1], (3, 4, 4), stride=(1 if i == 0 else 2, 2, 2), padding=(1, 1, 1)),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv3d(widths[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(video)


class LeCam(nn.Module):
    """LeCam regulariser (Tseng et al. 2021): keeps the discriminator's outputs near EMAs of
    its past outputs on the other class; EMAs are buffers so they checkpoint."""

    def __init__(self, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.ema_real.mul_(self.decay).add_((1 - self.decay) * real_logits.mean())
            self.ema_fake.mul_(self.decay).add_((1 - self.decay) * fake_logits.mean())
        return F.relu(real_logits - self.ema_fake).pow(2).mean() + F.relu(self.ema_real - fake_logits).pow(2).mean()


def frame_window(video: torch.Tensor, frames: int, rng: torch.Generator) -> torch.Tensor:
    """A random run of `frames` consecutive frames of (B, C, T, H, W); all of them if 0 or T
    or fewer."""
    t = video.shape[2]
    if frames <= 0 or frames >= t:
        return video
    start = int(torch.randint(0, t - frames + 1, (1,), generator=rng))
    return video[:, :, start:start + frames]


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


# -- the generator loss -------------------------------------------------------------------------
class TokenizerLoss(nn.Module):
    """Computes every term and their weighted sum for the tokenizer update. `forward`
    returns (total, terms) where terms is a dict of floats-as-tensors for the log."""

    def __init__(self, cfg: LossConfig, device="cpu", bits: int = 18):
        super().__init__()
        self.cfg = cfg
        self.lpips = load_lpips(device) if cfg.perceptual > 0 else None
        self.rate = None
        if cfg.rate > 0:
            from .rate import BitRateModel

            self.rate = BitRateModel(bits, crossplane=cfg.rate_crossplane, motion=cfg.rate_motion).to(device)
        self.disc = PatchDiscriminator(cfg.disc_channels).to(device) if cfg.adversarial > 0 else None
        self.lecam = LeCam().to(device) if cfg.adversarial > 0 else None

    def gan_active(self, step: int) -> bool:
        """Whether the generator gets the adversarial term at `step`."""
        return self.disc is not None and step >= self.cfg.gan_start

    def disc_active(self, step: int) -> bool:
        """Whether the discriminator takes an update at `step`."""
        start = self.cfg.gan_start if self.cfg.disc_start < 0 else min(self.cfg.disc_start, self.cfg.gan_start)
        return self.disc is not None and step >= start

    def forward(self, video: torch.Tensor, out, step: int, rng: torch.Generator) -> tuple[torch.Tensor, dict]:
        c = self.cfg
        with torch.autocast(device_type=video.device.type, enabled=False):
            x = video.float()
            y = out.reconstruction.float()
            terms: dict[str, torch.Tensor] = {}
            total = x.new_zeros(())
            diff = y - x
            frame_l1 = diff.abs().mean(dim=(1, 3, 4))  # [B, T]
            terms["l1"] = frame_l1.mean()  # logged unweighted, comparable across runs
            weights = frame_weights(frame_l1.detach(), c.frame_focus)
            total = total + c.l1 * (terms["l1"] if weights is None else (frame_l1 * weights).mean())
            mse = diff.pow(2).mean()
            terms["mse"] = mse.detach()
            if c.l2 > 0:
                total = total + c.l2 * mse
            if self.lpips is not None:
                t = x.shape[2]
                idx = None
                if 0 < c.perceptual_frames < t:
                    idx = torch.randperm(t, generator=rng)[: c.perceptual_frames].to(x.device)
                p = self.lpips(fold_frames(y, idx), fold_frames(x, idx)).reshape(x.shape[0], -1)  # [B, t]
                terms["lpips"] = p.mean()
                if weights is not None:
                    p = p * (weights if idx is None else weights.index_select(1, idx))
                total = total + c.perceptual * p.mean()
            lq = out.losses
            terms["commitment"] = lq.commitment.float()
            terms["entropy"] = lq.entropy.float()
            terms["sample_entropy"] = lq.per_sample_entropy.detach().float()
            terms["codebook_entropy"] = lq.codebook_entropy.detach().float()
            if self.rate is not None:
                b, _, t, h, w = x.shape
                sample_bits = self.rate.sample_frame_bits(out.quantized) / (b * t * h * w)  # [B, T']
                frame_bits = sample_bits.sum(dim=0)
                terms["bpp_est"] = frame_bits.sum()
                terms["bpp_est_key"] = frame_bits[0].detach()
                if c.rate_plane_ref > 0:
                    frame_bits = (sample_bits * rate_scale(out.quantized, c.rate_plane_ref).unsqueeze(1)).sum(dim=0)
                charged = frame_bits[0] + c.rate_predicted * frame_bits[1:].sum()
                total = total + c.rate * charged
            if c.hold > 0:
                terms["hold"], terms["flips"] = hold_loss(out.z.float(), c.hold_margin)
                total = total + c.hold * terms["hold"]
            ew = c.entropy_weight(step)
            total = total + c.commitment * terms["commitment"] + ew * terms["entropy"]
            if self.gan_active(step):
                # The discriminator's weights get no gradient from the generator step.
                self.disc.requires_grad_(False)
                g = -self.disc(frame_window(y, c.disc_frames, rng)).mean()
                self.disc.requires_grad_(True)
                terms["gan_g"] = g
                total = total + c.adversarial * g
            terms["total"] = total
        return total, terms

    def discriminator_loss(self, video: torch.Tensor, recon: torch.Tensor,
                           rng: torch.Generator) -> tuple[torch.Tensor, dict]:
        with torch.autocast(device_type=video.device.type, enabled=False):
            # Real and fake share the window: the discriminator compares like with like.
            both = frame_window(torch.stack([video.float(), recon.detach().float()]).flatten(0, 1),
                                self.cfg.disc_frames, rng)
            real, fake = self.disc(both).chunk(2)
            d = hinge_d_loss(real, fake)
            reg = self.lecam(real, fake)
            loss = d + self.cfg.lecam * reg
        return loss, {"gan_d": d.detach(), "lecam": reg.detach(), "d_real": real.mean().detach(), "d_fake": fake.mean().detach()}


@torch.no_grad()
def bit_stats(z: torch.Tensor) -> dict[str, torch.Tensor]:
    """Empirical rate facts of a batch of latents: bits per token if every plane were coded
    with its own marginal probability (sum over planes of H(p_k)), and the mean P(bit=1)."""
    bits = (z >= 0).float()
    p = bits.movedim(1, -1).reshape(-1, bits.shape[1]).mean(0).clamp(1e-6, 1 - 1e-6)
    h = -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))
    return {"bits_per_token_marginal": h.sum(), "p_one_mean": p.mean()}


def nats_to_bits(x):
    return x / math.log(2)


__all__ = [
    "LossConfig", "TokenizerLoss", "PatchDiscriminator", "LeCam", "hinge_d_loss", "sample_planes",
    "load_lpips", "fold_frames", "bit_stats", "nats_to_bits", "hold_loss",
]  # fmt: skip
