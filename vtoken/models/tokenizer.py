"""Tokenizer: causal 3D CNN encoder, LFQ, and a decoder with adaptive group norm.

video [B,3,T,H,W] in [-1,1], T = 1 + tf (T'-1), H, W multiples of sf
  -> encode -> z [B,K,T',H/sf,W/sf] -> LFQ -> q in {-1,+1} -> decode -> video
Bits: channel k of q is bit-plane k (plane 0 most important, see lfq.py)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TokenizerConfig
from .identity import ModelIdentity
from .layers import (AdaptiveGroupNorm, CausalConv3d, Downsample, FrameGroupNorm, ResBlock, StreamStart, Upsample,
                     depth_to_space, expand_time, space_to_depth)
from .lfq import LFQ, LFQLosses, LFQOutput, plane_mask
from .stream import StreamState, bound


def _kernel(conv3d: bool) -> tuple[int, int, int]:
    return (3, 3, 3) if conv3d else (1, 3, 3)


# Frames per slice for the per-frame levels at inference (0: no slicing). Those levels hold
# the largest activations; computing them a few frames at a time gives the same numbers with
# a peak memory that no longer grows with the chunk length.
FRAME_SLICE = 4


def _by_frames(fn, x: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
    """fn over time slices of x (and of conditions with the same frame count), concatenated.
    Exact for frame-wise fn; only used without autograd, where slicing saves memory."""
    t = x.shape[2]
    if FRAME_SLICE <= 0 or t <= FRAME_SLICE or torch.is_grad_enabled():
        return fn(x, *conds)
    return torch.cat(
        [fn(x[:, :, a : a + FRAME_SLICE], *(c[:, :, a : a + FRAME_SLICE] for c in conds)) for a in range(0, t, FRAME_SLICE)],
        dim=2,
    )


def plane_head(planes: int, heads: int) -> int:
    """The encoder head (TokenizerConfig.plane_heads) that serves a stream keeping `planes`
    planes: ceil(log2 planes), the last head also every count above its range."""
    return min(max(int(planes) - 1, 0).bit_length(), heads - 1)


class PlaneHead(nn.Module):
    """A correction of the latent for one range of kept plane counts: a per-frame 3x3 conv,
    SiLU and a 1x1 conv over the encoder's last features, added to the shared head's z. Its
    output conv starts at zero, so a model given heads codes as it did until they learn."""

    def __init__(self, channels: int, bits: int):
        super().__init__()
        self.conv = CausalConv3d(channels, channels, (1, 3, 3))
        self.out = CausalConv3d(channels, bits, 1)
        nn.init.zeros_(self.out.conv.weight)
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.conv(a)))


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch, g = cfg.channels, cfg.norm_groups
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.in_channels * self.patch**2, ch[0], _kernel(cfg.conv3d[0]))
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(cfg.levels):
            self.blocks.append(
                nn.ModuleList(
                    ResBlock(ch[i], ch[i], temporal=cfg.conv3d[i], groups=g) for _ in range(cfg.res_blocks[i])
                )
            )
            if i < cfg.levels - 1:
                self.downs.append(
                    Downsample(ch[i], ch[i + 1], temporal=cfg.temporal_down[i], spatial=cfg.spatial_down[i],
                               time_taps=cfg.temporal_down_kernel)
                )
        self.mid = nn.ModuleList(
            ResBlock(ch[-1], ch[-1], temporal=cfg.conv3d[-1], groups=g) for _ in range(cfg.mid_blocks)
        )
        self.norm_out = FrameGroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = CausalConv3d(ch[-1], cfg.bits, 1)
        self.plane_heads = nn.ModuleList(PlaneHead(ch[-1], cfg.bits) for _ in range(cfg.plane_heads))
        self.frame_levels = cfg.per_frame_levels

    def _frame_head(self, x: torch.Tensor) -> torch.Tensor:
        """conv_in and the per-frame levels (with the downsamplings between them)."""
        x = self.conv_in(self._patchify(x))
        for i in range(self.frame_levels):
            for block in self.blocks[i]:
                x = block(x)
            if i < self.frame_levels - 1:
                x = self.downs[i](x)
        return x

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        return space_to_depth(x, self.patch) if self.patch > 1 else x

    def forward(self, x: torch.Tensor, planes=None) -> torch.Tensor:
        """z [B, K, T', H', W'] for a stream keeping `planes` planes (None: all K; an int, or
        a LongTensor [B] per sample); `planes` matters only to a model with plane heads."""
        return self.head(self.features(x), planes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output, normalised and activated: what the heads read. It does not
        depend on the plane count, so a codec can run it before the count is chosen."""
        p = self.frame_levels
        x = _by_frames(self._frame_head, x) if p else self.conv_in(self._patchify(x))
        for i in range(p, len(self.blocks)):
            if i > 0:
                x = self.downs[i - 1](x)  # into level i (may be temporal)
            for block in self.blocks[i]:
                x = block(x)
        for block in self.mid:
            x = block(x)
        return F.silu(self.norm_out(x))

    def head(self, a: torch.Tensor, planes=None) -> torch.Tensor:
        """z from the features `a` (features()) for `planes` kept planes (see forward)."""
        z = self.conv_out(a)
        n = len(self.plane_heads)
        if not n:
            return z
        bits = z.shape[1]
        if planes is None or not torch.is_tensor(planes):
            return z + self.plane_heads[plane_head(bits if planes is None else planes, n)](a)
        heads = [plane_head(k, n) for k in planes.tolist()]
        # Samples sharing a head go through it together.
        out = z.clone()
        for h in sorted(set(heads)):
            rows = torch.tensor([i for i, g in enumerate(heads) if g == h], device=z.device)
            out[rows] = z[rows] + self.plane_heads[h](a[rows])
        return out


class Decoder(StreamStart, nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch, g, k = cfg.decoder_widths, cfg.norm_groups, cfg.bits
        self.conv_in = CausalConv3d(k, ch[-1], _kernel(cfg.conv3d[-1]))
        self.mid = nn.ModuleList(
            ResBlock(ch[-1], ch[-1], temporal=cfg.conv3d[-1], groups=g, cond_channels=k)
            for _ in range(cfg.mid_blocks)
        )
        # Deepest level first; ups[j] follows blocks[j].
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(cfg.levels)):
            self.blocks.append(
                nn.ModuleList(
                    ResBlock(ch[i], ch[i], temporal=cfg.conv3d[i], groups=g, cond_channels=k)
                    for _ in range(cfg.decoder_blocks[i])
                )
            )
            if i > 0:
                self.ups.append(
                    Upsample(ch[i], ch[i - 1], temporal=cfg.temporal_down[i - 1], spatial=cfg.spatial_down[i - 1])
                )
        self.norm_out = AdaptiveGroupNorm(ch[0], k, g)
        self.patch = cfg.patch_size
        self.conv_out = CausalConv3d(ch[0], cfg.in_channels * self.patch**2, _kernel(cfg.conv3d[0]))
        # blocks[j] is level levels-1-j: the per-frame levels are the last ones.
        self.frame_from = cfg.levels - cfg.per_frame_levels
        # decoder_temporal_blocks mix frames, so they run on the whole chunk (never in frame
        # slices), just before the per-frame levels: at the width of the coarsest of those.
        self.temporal = nn.ModuleList(
            ResBlock(ch[cfg.per_frame_levels - 1], ch[cfg.per_frame_levels - 1], temporal=True, groups=g,
                     cond_channels=k, kernel=(3, 1, 1))
            for _ in range(cfg.decoder_temporal_blocks)
        )

    def _frame_tail(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The per-frame levels and the output head; `cond` is the latent already repeated to
        x's frames, so a time slice of x takes the same slice of cond."""
        for j in range(self.frame_from, len(self.blocks)):
            for block in self.blocks[j]:
                x = block(x, cond)
            if j < len(self.ups):
                x = self.ups[j](x)
        return self._head(x, cond)

    def _head(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """norm, SiLU, the output conv and (with a patch stem) the depth-to-space to pixels."""
        x = self.conv_out(F.silu(self.norm_out(x, cond)))
        return depth_to_space(x, 1, self.patch) if self.patch > 1 else x

    def forward(self, q: torch.Tensor, frames: slice | None = None) -> torch.Tensor:
        """Video from q; with `frames` (a slice of the output frames) only those: the levels
        that work frame by frame then run on them alone."""
        continuing = self._continuing()
        x = self.conv_in(q)
        for block in self.mid:
            x = block(x, q)
        for j in range(self.frame_from):
            for block in self.blocks[j]:
                x = block(x, q)
            if j < len(self.ups):
                x = self.ups[j](x)  # into level levels-2-j (may be temporal)
        if self.frame_from == len(self.blocks):  # no per-frame level: conv_out may be 3D
            out = self._head(x, q)
            return out if frames is None else out[:, :, frames]
        for block in self.temporal:
            x = block(x, q)
        cond = expand_time(q, x.shape[2], continuing)
        if frames is not None:
            x, cond = x[:, :, frames], cond[:, :, frames]
        return _by_frames(self._frame_tail, x, cond)


class TokenizerOutput(NamedTuple):
    reconstruction: torch.Tensor  # [B,3,T,H,W], not clamped (losses want the raw output)
    z: torch.Tensor  # pre-quantization latent [B,K,T',H',W']
    quantized: torch.Tensor  # straight-through q, dropped planes zeroed
    indices: torch.Tensor  # [B,T',H',W'] int64 tokens of the full K bits
    losses: LFQLosses


class Tokenizer(nn.Module):
    """Build from a TokenizerConfig (or a preset name). `identity` and `entropy_prior` are
    set by the store when the model is loaded from disk."""

    def __init__(self, config: TokenizerConfig | str = "vtoken-base"):
        super().__init__()
        if isinstance(config, str):
            config = TokenizerConfig.preset(config)
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantizer = LFQ(bits=config.bits, entropy_group_size=config.entropy_group_size)
        self._identity: ModelIdentity | None = None
        self.entropy_prior: np.ndarray | None = None  # int64, owned by vtoken.entropy
        self.entropy_predictor = None  # vtoken.entropy.CrossPlanePredictor, when the model has one

    # -- streaming: a long video in successive chunks ---------------------------------------
    # encode/decode/encode_bits/decode_bits take an optional StreamState (stream.py): with
    # one, successive calls continue one causal stream (first chunk 1 + 4n frames, n + 1
    # latent frames; later ones 4n frames, n latent frames) and give what one call on the
    # whole video gives. The encoder and the decoder need separate states. The model itself
    # holds none, so any number of streams, threads and generators can share it.
    def _run(self, half: nn.Module, x: torch.Tensor, state: StreamState | None, role: str, **kw) -> torch.Tensor:
        if state is None:
            return half(x, **kw)
        state.claim(role)
        with bound(state):
            out = half(x, **kw)
        state.chunks += 1
        return out

    # -- facts the codec needs ---------------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity | None:
        """ModelIdentity(name, sha256) of the weights this model was loaded from; None for a
        model that was built in memory and never saved/loaded."""
        return self._identity

    @identity.setter
    def identity(self, value: ModelIdentity | None) -> None:
        self._identity = value

    @property
    def bits(self) -> int:
        return self.config.bits

    @property
    def spatial_factor(self) -> int:
        return self.config.spatial_factor

    @property
    def temporal_factor(self) -> int:
        return self.config.temporal_factor

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(K, T', H', W') for a valid input size."""
        self._check_size(frames, height, width)
        tf, sf = self.temporal_factor, self.spatial_factor
        return (self.bits, 1 + (frames - 1) // tf, height // sf, width // sf)

    def _check_size(self, frames: int, height: int, width: int, continuing: bool = False) -> None:
        tf, sf = self.temporal_factor, self.spatial_factor
        if continuing:
            if frames < tf or frames % tf or height < sf or width < sf or height % sf or width % sf:
                raise ValueError(f"a continuing stream chunk needs {tf}n frames and sizes that are multiples of {sf}; "
                                 f"got {frames} frames at {width}x{height}")
            return
        if frames < 1 or (frames - 1) % tf or height < sf or width < sf or height % sf or width % sf:
            raise ValueError(
                f"video of {frames} frames at {width}x{height} is not a valid model input: frames must be "
                f"1 + {tf}n (1, {1 + tf}, {1 + 2 * tf}, ...) and width, height positive multiples of {sf}; "
                "pad the clip first"
            )

    def _check_video(self, video: torch.Tensor, continuing: bool = False) -> None:
        c = self.config.in_channels
        if video.ndim != 5 or video.shape[1] != c:
            raise ValueError(f"video must be a float tensor [B, {c}, T, H, W] in [-1, 1], got shape {tuple(video.shape)}")
        self._check_size(*video.shape[2:], continuing=continuing)

    def _check_latent(self, q: torch.Tensor) -> None:
        if q.ndim != 5 or q.shape[1] != self.bits:
            raise ValueError(f"latent must be [B, {self.bits}, T', H', W'], got shape {tuple(q.shape)}")

    # -- the model ---------------------------------------------------------------------------
    def encode(self, video: torch.Tensor, state: StreamState | None = None, planes=None) -> torch.Tensor:
        """Pre-quantization latent z [B,K,T',H',W']; `state` continues a stream (see above);
        `planes`: the plane count the stream keeps (None: all), for a model with plane heads."""
        self._check_video(video, continuing=state is not None and state.continuing)
        return self._run(self.encoder, video, state, "encode", planes=planes)

    def encode_features(self, video: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """The encoder's features before its heads (Encoder.features): latent_for turns them into z
        once the plane count is known. Continues `state` as encode does."""
        self._check_video(video, continuing=state is not None and state.continuing)
        return self._run(self.encoder.features, video, state, "encode")

    def latent_for(self, features: torch.Tensor, planes=None) -> torch.Tensor:
        """z from encode_features' output for a stream keeping `planes` planes."""
        return self.encoder.head(features, planes)

    @property
    def has_plane_heads(self) -> bool:
        return bool(self.config.plane_heads)

    def quantize(self, z: torch.Tensor, planes=None, return_losses: bool | None = None) -> LFQOutput:
        return self.quantizer(z, planes=planes, return_losses=return_losses)

    def decode(self, q: torch.Tensor, planes=None, state: StreamState | None = None) -> torch.Tensor:
        """Video from quantized latents; with `planes`, planes >= planes are zeroed first."""
        self._check_latent(q)
        if planes is not None:
            q = q * plane_mask(planes, self.bits, q.shape[0], q.device).to(q.dtype)
        return self._run(self.decoder, q, state, "decode")

    @torch.no_grad()
    def encode_bits(self, video: torch.Tensor, state: StreamState | None = None, planes=None) -> torch.Tensor:
        """uint8 bits [B,K,T',H',W'] in {0,1}; 1 where z >= 0 (LFQ's +1); `planes` as encode."""
        return (self.encode(video, state, planes=planes) >= 0).to(torch.uint8)

    @torch.no_grad()
    def decode_bits(self, bits: torch.Tensor, planes: int | None = None, state: StreamState | None = None,
                    frames: slice | None = None, limit: torch.Tensor | None = None) -> torch.Tensor:
        """Video in [-1,1] from bits [B,k,T',H',W'] with k <= K: planes >= `planes` (default:
        all given) and the K - k missing planes are fed to the decoder as 0. `frames` (a
        slice of the chunk's output frames): only those, at less cost (Decoder.forward).
        `limit` ([B, T', H', W'] integers, a plane map): at each position, planes >= its
        value are fed as 0 too."""
        if bits.ndim != 5 or not 1 <= bits.shape[1] <= self.bits:
            raise ValueError(f"bits must be [B, k, T', H', W'] with 1 <= k <= {self.bits}, got shape {tuple(bits.shape)}")
        given = bits.shape[1]
        planes = given if planes is None else int(planes)
        if not 0 <= planes <= self.bits:
            raise ValueError(f"planes={planes} is out of range; allowed: 0..{self.bits}")
        param = next(self.parameters())
        kept = min(planes, given)
        b, _, t, h, w = bits.shape
        q = torch.zeros((b, self.bits, t, h, w), device=param.device, dtype=param.dtype)
        q[:, :kept] = bits[:, :kept].to(device=param.device, dtype=param.dtype) * 2 - 1
        if limit is not None:
            rank = torch.arange(self.bits, device=param.device).view(1, -1, 1, 1, 1)
            q = q * (rank < limit.to(param.device).unsqueeze(1)).to(q.dtype)
        return self._run(self.decoder, q, state, "decode", frames=frames).clamp(-1, 1)

    def forward(self, video: torch.Tensor, planes=None, signs=None) -> TokenizerOutput:
        """Training pass: LFQ losses are always computed; `planes` (int or per-sample
        LongTensor [B]) implements nested plane dropout; `signs` replaces sign(z) (LFQ)."""
        z = self.encode(video, planes=planes)
        quant = self.quantizer(z, planes=planes, return_losses=True, signs=signs)
        recon = self.decoder(quant.quantized)
        return TokenizerOutput(recon, z, quant.quantized, quant.indices, quant.losses)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
