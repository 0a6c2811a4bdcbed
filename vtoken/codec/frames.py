"""Frames <-> model tensors: padding to the model's multiples and cropping back.

Frames are uint8 [T, H, W, 3] RGB. The model wants float [1, 3, T', H', W'] in [-1, 1] with
T' = 1 + 4n and H', W' multiples of the spatial factor. Padding replicates the last frame and
the edge pixels (no new content for the codec to spend bits on); cropping drops it again.

A stream may have a finer time grid than the model (its temporal factor the model's divided
by r): the encoder then gives the model every frame r times (a key chunk's first frame once),
so each frame gets r times the latent frames, and the decoder keeps the last decoded copy of
each, the one whose latent frame has read all its copies. Or a coarser one (the model's times
s, up to MAX_STRIDE): the model codes every s-th frame and the decoder blends the others
(coarse.py).
"""

from __future__ import annotations

import numpy as np


def padded_length(frames: int, temporal_factor: int) -> int:
    """Smallest 1 + f*n >= frames."""
    return 1 + temporal_factor * -(-(frames - 1) // temporal_factor)


def padded_size(size: int, spatial_factor: int) -> int:
    return -(-size // spatial_factor) * spatial_factor


def pad_frames(frames: np.ndarray, temporal_factor: int, spatial_factor: int, continuing: bool = False) -> np.ndarray:
    """Pad to 1 + f n frames (f n for a chunk continuing a stream) and to spatial multiples."""
    t, h, w, _ = frames.shape
    tp = -(-t // temporal_factor) * temporal_factor if continuing else padded_length(t, temporal_factor)
    hp, wp = padded_size(h, spatial_factor), padded_size(w, spatial_factor)
    if (tp, hp, wp) == (t, h, w):
        return frames
    return np.pad(frames, ((0, tp - t), (0, hp - h), (0, wp - w), (0, 0)), mode="edge")


# The coarsest grid codes every 8th frame (factor 32 for a 4x model: chunks of 1 + 32n frames,
# so 33-frame chunks, the default; a 17-frame chunk holds up to every 4th). On the eval clips
# every 8th against every 4th frame: -21 % BD-rate on cityCC0, -2 % on VID_20191220_170832,
# +35 % on cockatoo (fast motion ghosts more the longer the gap).
MAX_STRIDE = 8


def stream_factors(model_factor: int) -> list[int]:
    """The time grids a stream of this model may use, coarsest first: its factor times
    MAX_STRIDE .. 2 (coarser), its own, and its divisors (finer)."""
    coarse = [model_factor * s for s in range(MAX_STRIDE, 1, -1)]
    return coarse + [f for f in range(model_factor, 0, -1) if model_factor % f == 0]


def _check_factor(model_factor: int, stream_factor: int) -> None:
    if stream_factor not in stream_factors(model_factor):
        raise ValueError(f"a stream's temporal factor must be one of {stream_factors(model_factor)} for a model "
                         f"with {model_factor}, got {stream_factor}")


def frame_repeat(model_factor: int, stream_factor: int) -> int:
    """r: how many times the model sees each frame of a stream with `stream_factor` (1 on the
    model's grid or a coarser one)."""
    _check_factor(model_factor, stream_factor)
    return max(1, model_factor // stream_factor)


def frame_stride(model_factor: int, stream_factor: int) -> int:
    """s: the model codes every s-th frame of a stream with `stream_factor` (1 on the model's
    grid or a finer one; coarse.py)."""
    _check_factor(model_factor, stream_factor)
    return max(1, stream_factor // model_factor)


def model_frames(frames: int, model_factor: int, stream_factor: int) -> int:
    """Frames the model runs on for a key chunk of `frames` frames (what bounds its memory)."""
    stride = frame_stride(model_factor, stream_factor)
    return 1 + frame_repeat(model_factor, stream_factor) * -(-(frames - 1) // stride)


def repeat_frames(frames: np.ndarray, r: int, key: bool) -> np.ndarray:
    """Every frame r times, a key chunk's first frame (coded alone) once."""
    if r == 1:
        return frames
    if key:
        return np.concatenate([frames[:1], np.repeat(frames[1:], r, axis=0)])
    return np.repeat(frames, r, axis=0)


def last_copies(r: int, key: bool) -> slice | None:
    """The frames to keep of a chunk decoded from repeat_frames' input: the last copy of each
    (None: all, r = 1). The decoder takes it (Tokenizer.decode_bits' `frames`), so the
    dropped copies skip its per-frame levels."""
    if r == 1:
        return None
    return slice(0, None, r) if key else slice(r - 1, None, r)


def to_tensor(frames: np.ndarray, device, dtype=None):
    """uint8 [T, H, W, 3] -> float [1, 3, T, H, W] in [-1, 1] on `device`."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device, non_blocking=True)
    x = x.permute(3, 0, 1, 2).unsqueeze(0).float().div_(127.5).sub_(1.0)
    return x if dtype is None else x.to(dtype)


def to_frames(video, frames: int, height: int, width: int) -> np.ndarray:
    """float [1, 3, T, H, W] in [-1, 1] -> uint8 [frames, height, width, 3], cropped."""
    import torch

    x = video[0, :, :frames, :height, :width].float()
    x = ((x.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().cpu().numpy()
