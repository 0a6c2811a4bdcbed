"""Building blocks of the causal tokenizer.

Every layer is causal in time: output frame t depends on input frames <= t only. That holds
for the norms too: GroupNorm statistics are taken per frame (over channels-in-group, H, W),
never across time, so a frame never sees the future through its normalisation and a clip
can later be processed in chunks.

Tensors are [B, C, T, H, W]; everything works in channels_last_3d and under bf16 autocast."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .stream import current, new_slot

Size3 = tuple[int, int, int]


def _triple(v: int | Size3) -> Size3:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class Streamable:
    """A layer that can carry state from one call to the next, so a long video can be fed in
    successive chunks and give what one call on the whole video gives. The state lives in the
    caller's StreamState (stream.py), under this layer's slot, never in the layer: without a
    bound state a call is a whole clip. The first chunk of a stream has 1 + 4n frames, the
    following ones 4n (no frame of theirs stands alone)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream_slot = new_slot()


class StreamStart(Streamable):
    """Stream state that is only "has a chunk gone through yet?": layers whose first chunk of
    a stream is laid out differently (frame 0 alone) from the ones that continue it."""

    def _continuing(self) -> bool:
        """Mark a chunk as going through; True when it continues a stream."""
        state = current()
        if state is None:
            return False
        continuing = bool(state.get(self.stream_slot, False))
        state.set(self.stream_slot, True)
        return continuing


def conv3d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """conv(x), sent to oneDNN for fp32 on the CPU: PyTorch picks its backend with a 2-D rule
    (N*C*D*H > 20480) that sends single frames and small latent grids to the reference 3-D
    convolution, 4-8x slower than oneDNN; with a gradient (the encoder's search, which decodes
    one latent frame at a time) forward and backward. Same result and gradients either way, to
    float rounding. (Not under torch.compile, which cannot trace the direct call and picks its
    own kernels.)"""
    # Under bf16 autocast (codec/precision.py) PyTorch sends bf16 convolutions to oneDNN itself;
    # the direct call below would bypass autocast and stay fp32.
    if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
            and torch.backends.mkldnn.is_available() and conv.padding_mode == "zeros" and x.is_contiguous()):
        if torch.is_grad_enabled():
            if _pytorch_takes_onednn(conv, x) or conv.padding[0] or conv.dilation[0] != 1:
                return conv(x)  # oneDNN both ways, without the copies below
            return _conv3d_as_2d(conv, x)
        return torch.mkldnn_convolution(x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups)
    return conv(x)


def _pytorch_takes_onednn(conv: nn.Conv3d, x: torch.Tensor) -> bool:
    """Whether PyTorch's own rule sends conv(x) to oneDNN on the CPU (groups, a batch, a spatial
    kernel over 3x3, or N*C*D*H over 20480): a training clip of 17 frames at 384 px mostly is."""
    kh, kw = conv.kernel_size[1:]
    return (conv.groups > 1 or x.shape[0] > 1 or (kh > 3 and kw > 3)
            or x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] > 20480)


def _conv3d_as_2d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) (no time padding) as one conv2d over the output frames, each frame's time taps
    stacked as channels. For a gradient: the backward pass of torch.mkldnn_convolution goes back
    to PyTorch's 3-D rule and its reference kernel (a 3x3x3 conv of 48 channels on 4 frames at
    90x160: 84 ms back against 8 forward), while the 2-D rule takes oneDNN both ways."""
    b, c, t, h, w = x.shape
    kt, st = conv.kernel_size[0], conv.stride[0]
    frames = (t - kt) // st + 1
    if frames < 1:
        return conv(x)  # too few frames: PyTorch's own error
    taps = torch.stack([x[:, :, i:i + st * (frames - 1) + 1:st] for i in range(kt)], dim=2)  # [B, C, kt, T', H, W]
    images = taps.permute(0, 3, 1, 2, 4, 5).reshape(b * frames, c * kt, h, w)  # channel c * kt + tap
    weight = conv.weight.reshape(conv.out_channels, -1, *conv.kernel_size[1:])  # [O, C/groups * kt, kh, kw]
    y = F.conv2d(images, weight, conv.bias, conv.stride[1:], conv.padding[1:], conv.dilation[1:], conv.groups)
    return y.view(b, frames, *y.shape[1:]).transpose(1, 2).contiguous()


class CausalConv3d(Streamable, nn.Module):
    """Conv3d that pads time on the past side only, replicating the first frame, and pads
    space symmetrically with zeros. With temporal stride s and kernel k, T frames become
    1 + (T - 1) // s: frame 0 stays alone, so a single image is a valid input. Streaming, a
    chunk after the first is prefixed with the last k - s input frames of the one before
    instead of padding (T frames become T // s)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | Size3 = 3,
        stride: int | Size3 = 1,
        bias: bool = True,
    ):
        super().__init__()
        kt, kh, kw = _triple(kernel)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel must be odd for symmetric padding, got {(kh, kw)}")
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(
            in_channels, out_channels, (kt, kh, kw), stride=_triple(stride), padding=(0, kh // 2, kw // 2), bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.time_pad:
            return conv3d(self.conv, x)
        state = current()
        cache = None if state is None else state.get(self.stream_slot)
        if cache is not None:
            x = torch.cat([cache.to(x.dtype), x], dim=2)
        else:
            # Replicate frame 0 into the past: a still image then looks like a still video.
            first = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
            x = torch.cat([first, x], dim=2)
        if state is not None:
            # Frames after the last window start that the next chunk's windows still read.
            n, (kt, st) = x.shape[2], (self.time_pad + 1, self.conv.stride[0])
            keep = n - st * ((n - kt) // st + 1)
            state.set(self.stream_slot, x[:, :, n - keep :].detach().clone())
        return conv3d(self.conv, x)


def frame_stats(x: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm statistics of every frame: mean and 1/std per (sample, group, frame), repeated
    over the group's channels, as [B,C,T,1,1] in x's dtype. Sums of x and x^2 per channel over
    the contiguous H*W in fp32 (one fast pass each; Welford's var_mean is ~30x slower on the
    CPU), then pooled over the group's channels."""
    b, c, t, h, w = x.shape
    flat = x.reshape(b, c, t, h * w)
    n = h * w
    mean = flat.sum(dim=3, dtype=torch.float32) / n
    meansq = torch.linalg.vector_norm(flat, 2, dim=3, dtype=torch.float32) ** 2 / n
    mean, meansq = mean.view(b, groups, c // groups, t), meansq.view(b, groups, c // groups, t)
    group_mean = mean.mean(dim=2, keepdim=True)
    group_var = (meansq.mean(dim=2, keepdim=True) - group_mean**2).clamp_(min=0)
    rstd = torch.rsqrt(group_var + eps)
    per_channel = (b, groups, c // groups, t)
    return (group_mean.expand(per_channel).reshape(b, c, t, 1, 1).to(x.dtype),
            rstd.expand(per_channel).reshape(b, c, t, 1, 1).to(x.dtype))


def frame_group_norm(x: torch.Tensor, groups: int, weight, bias, eps: float = 1e-6) -> torch.Tensor:
    """GroupNorm with statistics per frame. Normalisation and affine are folded into one
    multiply-add (x * a + b with small a, b): at full resolution the norms are memory-bound,
    and this reads the activation twice and writes it once, with no layout change."""
    mean, rstd = frame_stats(x, groups, eps)
    a = rstd if weight is None else rstd * weight.view(1, -1, 1, 1, 1).to(x.dtype)
    b = -mean * a if bias is None else bias.view(1, -1, 1, 1, 1).to(x.dtype) - mean * a
    return torch.addcmul(b, x, a)


class FrameGroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters) normalising each frame on its own: see module doc."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return frame_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def expand_time(cond: torch.Tensor, frames: int, continuing: bool = False) -> torch.Tensor:
    """Repeat latent frames [B,C,T',...] to `frames` respecting the causal frame layout
    T = 1 + f (T' - 1): latent frame 0 covers frame 0 and latent frame j covers frames
    f(j-1)+1 .. fj (for f = 4: 4j-3 .. 4j). A `continuing` stream chunk has no lone first
    frame: T = f T'."""
    tl = cond.shape[2]
    if continuing:
        if frames % tl:
            raise ValueError(f"cannot expand {tl} latent frames to {frames} frames (need T = f T')")
        f = frames // tl
        return cond.repeat_interleave(f, dim=2) if f > 1 else cond
    if tl > 1 and (frames - 1) % (tl - 1) == 0:
        f = (frames - 1) // (tl - 1)
    elif tl == 1 and frames == 1:
        f = 1
    else:
        raise ValueError(f"cannot expand {tl} latent frames to {frames} frames (need T = 1 + f (T' - 1))")
    if f > 1:
        cond = cond.repeat_interleave(f, dim=2)[:, :, f - 1 :]
    return cond


def expand_condition(cond: torch.Tensor, size: Size3) -> torch.Tensor:
    """Bring a latent-resolution condition [B,C,T',h,w] to `size` = (T, H, W): time as in
    expand_time, space by nearest repetition."""
    t, h, w = size
    cond = expand_time(cond, t)
    hl, wl = cond.shape[3:]
    if (h, w) != (hl, wl):
        if h % hl or w % wl:
            raise ValueError(f"cannot expand a {hl}x{wl} condition to {h}x{w}")
        cond = cond.repeat_interleave(h // hl, dim=3).repeat_interleave(w // wl, dim=4)
    return cond


def _coarse_view(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """x [B,C,T,H,W] as [B,C,T,h,H/h,w,W/w], so that [B,C,T,h,w] tensors broadcast over it."""
    b, c, t, hh, ww = x.shape
    if hh % h or ww % w:
        raise ValueError(f"cannot expand a {h}x{w} condition to {hh}x{ww}")
    return x.reshape(b, c, t, h, hh // h, w, ww // w)


def normalize_modulate(x: torch.Tensor, groups: int, eps: float, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """frame_group_norm(x) * (1 + scale) + shift, where scale/shift [B,C,T,h,w] may be at a
    lower spatial resolution than x [B,C,T,H,W] (they are broadcast over H/h x W/w blocks,
    never materialised at full size). One pass over x: with the frame statistics m, r it is
    x * a + b, where a = r (1 + scale) and b = shift - m a live at the condition's resolution."""
    mean, rstd = frame_stats(x, groups, eps)
    a = rstd * (1 + scale.to(x.dtype))
    b = shift.to(x.dtype) - mean * a
    h, w = scale.shape[3:]
    if (h, w) == x.shape[3:]:
        return torch.addcmul(b, x, a)
    out = torch.addcmul(b[:, :, :, :, None, :, None], _coarse_view(x, h, w), a[:, :, :, :, None, :, None])
    return out.reshape(x.shape)


class AdaptiveGroupNorm(StreamStart, nn.Module):
    """Decoder norm: per-frame GroupNorm (no affine), then a per-channel scale and shift
    predicted from the quantized latent. The prediction is a 1x1x1 conv computed at latent
    resolution and then repeated (identical to repeating first, far cheaper at full res)."""

    def __init__(self, channels: int, cond_channels: int, groups: int, eps: float = 1e-6):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.to_scale_shift = nn.Conv3d(cond_channels, 2 * channels, 1)
        # Start as a plain GroupNorm with unit scale: the condition learns to modulate.
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = expand_time(self.to_scale_shift(cond), x.shape[2], self._continuing()).chunk(2, dim=1)
        return normalize_modulate(x, self.groups, self.eps, scale, shift)


class ResBlock(nn.Module):
    """norm-SiLU-conv twice plus a skip (1x1x1 conv when the width changes). With
    `cond_channels` the norms are AdaptiveGroupNorm and forward takes the condition. The
    kernel is 3x3x3 (`temporal`) or 1x3x3 unless `kernel` says otherwise."""

    def __init__(
        self, in_channels: int, out_channels: int, *, temporal: bool, groups: int, cond_channels: int = 0,
        kernel: Size3 | None = None,
    ):
        super().__init__()
        if kernel is None:
            kernel = (3, 3, 3) if temporal else (1, 3, 3)
        self.conditioned = cond_channels > 0
        if self.conditioned:
            self.norm1 = AdaptiveGroupNorm(in_channels, cond_channels, groups)
            self.norm2 = AdaptiveGroupNorm(out_channels, cond_channels, groups)
        else:
            self.norm1 = FrameGroupNorm(groups, in_channels, eps=1e-6)
            self.norm2 = FrameGroupNorm(groups, out_channels, eps=1e-6)
        self.conv1 = CausalConv3d(in_channels, out_channels, kernel)
        self.conv2 = CausalConv3d(out_channels, out_channels, kernel)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def _norm(self, norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return norm(x, cond) if self.conditioned else norm(x)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, cond)))
        h = self.conv2(F.silu(self._norm(self.norm2, h, cond)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Strided conv: 2x in space when `spatial`, and 2x in time when `temporal` (`time_taps`
    frames, causal, so T -> 1 + (T - 1) // 2: 17 -> 9 -> 5, 1 -> 1, with 3 or 4 taps)."""

    def __init__(self, in_channels: int, out_channels: int, *, temporal: bool, spatial: bool = True,
                 time_taps: int = 3):
        super().__init__()
        kernel = (time_taps, 3, 3) if temporal else (1, 3, 3)
        stride = (2 if temporal else 1, 2 if spatial else 1, 2 if spatial else 1)
        self.conv = CausalConv3d(in_channels, out_channels, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def depth_to_space(x: torch.Tensor, rt: int, rs: int, drop_first: bool = True) -> torch.Tensor:
    """[B, C*rt*rs*rs, T, H, W] -> [B, C, T*rt - (rt-1), H*rs, W*rs]. In time, each frame
    becomes rt frames and the first rt-1 are dropped: frame 0 stays a single frame (causal
    layout T' -> 1 + rt (T' - 1)). A continuing stream chunk keeps them (T' -> rt T')."""
    b, c, t, h, w = x.shape
    out = c // (rt * rs * rs)
    x = x.reshape(b, out, rt, rs, rs, t, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, out, t * rt, h * rs, w * rs)
    return x[:, :, rt - 1 :] if rt > 1 and drop_first else x


class Upsample(StreamStart, nn.Module):
    """Depth-to-space: a conv to out*r channels, then a pixel (and/or time) shuffle."""

    def __init__(self, in_channels: int, out_channels: int, *, temporal: bool, spatial: bool = True):
        super().__init__()
        self.rt = 2 if temporal else 1
        self.rs = 2 if spatial else 1
        # Per-frame (1,3,3) kernel: the conv has out*rt*4 output channels, so a 3x3x3 kernel
        # here would triple the largest weights of the decoder; the residual blocks around it
        # do the temporal mixing.
        self.conv = CausalConv3d(in_channels, out_channels * self.rt * self.rs**2, (1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), self.rt, self.rs, drop_first=not self._continuing())


def space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C*r*r, T, H/r, W/r], the inverse of depth_to_space(x, 1, r):
    every frame's r x r patches folded into channels (per frame, so causal)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // r, r, w // r, r)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * r * r, t, h // r, w // r)
