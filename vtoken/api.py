"""The library entry points: files in, files out. The CLI is a thin layer over these.

Nothing here prints; progress bars appear only when `progress=True` (on stderr).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

from . import defaults
from .device import resolve_device
from .errors import InputError, UsageError

@dataclass
class EncodeResult:
    path: str
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    planes: list[int]
    seconds: float
    fps: float
    model: str
    device: str
    timings: dict = field(default_factory=dict)
    precision: str = "fp32"
    chunk_frames: int = defaults.CHUNK_FRAMES
    key_interval: int = defaults.KEY_INTERVAL
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecodeResult:
    path: str | None
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    planes: int
    seconds: float
    fps: float
    device: str
    concealed_frames: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    precision: str = "fp32"

    def to_dict(self) -> dict:
        return asdict(self)


def _progress(enabled: bool, total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)  # tqdm writes to stderr


def _model(model, device, needs: str):
    """A loaded Tokenizer from `model`: a Tokenizer as is, a name / path, or None (the default)."""
    from .models import load_model

    return model if hasattr(model, needs) else load_model(model, device=device)


def encode(
    src,
    dst,
    *,
    model=None,
    planes: int | None = None,
    quality: int | None = None,
    bpp: float | None = None,
    device: str = defaults.DEVICE,
    chunk_frames: int = defaults.CHUNK_FRAMES,
    key_interval: int = defaults.KEY_INTERVAL,
    precision: str = defaults.PRECISION,
    overwrite: bool = False,
    progress: bool = False,
) -> EncodeResult:
    """Encode a video or image file `src` into the .mvt file `dst`.

    Rate: `planes` (1..K bit-planes kept), `quality` (1..8, spread over the planes) or `bpp`
    (a target in bits per pixel for the whole file); all planes when none is given. `model` is
    a loaded Tokenizer, a model name / path, or None for the default model. `precision`:
    auto, fp32 or bf16 (see vtoken.codec.precision; auto encodes in fp32)."""
    from .codec.codec import Codec
    from .codec.pipeline import Timings
    from .fsutil import atomic_path
    from .media import VideoReader, extract_audio

    dev = resolve_device(device)
    codec = Codec(_model(model, dev, "encode_bits"), dev)
    started = time.perf_counter()
    timings = Timings()
    with VideoReader(src) as reader:
        info = reader.info
        audio = extract_audio(src)
        with atomic_path(dst, overwrite=overwrite) as tmp, open(tmp, "wb") as f, \
                _progress(progress, info.frame_count, "encode") as bar:
            done = codec.compress(reader.frames(), f, info, planes=planes, quality=quality, bpp=bpp,
                                  chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                                  audio=audio, source=str(src), timings=timings, on_chunk=bar.update)
    seconds = time.perf_counter() - started
    size = os.path.getsize(dst)
    ident = codec.model.identity
    return EncodeResult(
        path=str(dst), frames=done.frames, width=info.width, height=info.height, bytes=size,
        bpp=size * 8 / (done.frames * info.width * info.height), planes=done.planes, seconds=seconds,
        fps=done.frames / seconds, model=f"{ident.name} sha256:{ident.sha256}", device=str(dev),
        timings=timings.as_dict(), precision=done.precision, chunk_frames=done.header.frames_per_chunk,
        key_interval=done.header.key_interval,
        warnings=done.warnings)


def _model_for(header, model, device):
    """The model a stream needs: `model` if given (checked against the header by the codec),
    else the installed one the header names."""
    from .models import load_model_by_identity

    if model is None:
        return load_model_by_identity(header.model_name, header.sha256_hex, device=device)
    return _model(model, device, "decode_bits")


@contextlib.contextmanager
def _decoded(src, model, device, tolerant: bool, warnings: list[str], **window):
    """The one decoding path of decode and decode_frames: (reader, codec, chunks), the file
    open and the chunks' threads stopped again on the way out, whatever happens."""
    from .bitstream import open_mvt
    from .codec.codec import Codec

    dev = resolve_device(device)
    with open_mvt(src, tolerant=tolerant) as reader:
        codec = Codec(_model_for(reader.header, model, dev), dev)
        chunks = codec.decompress(reader, tolerant=tolerant, warnings=warnings, **window)
        with contextlib.closing(chunks):
            yield reader, codec, chunks


def decode_frames(
    src,
    *,
    model=None,
    device: str = defaults.DEVICE,
    start: int = 0,
    frames: int | None = None,
    planes: int | None = None,
    tolerant: bool = False,
    precision: str = defaults.PRECISION,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield decoded frames of a .mvt file, uint8 [t, H, W, 3] per chunk. Warnings (damage
    concealed with `tolerant`, a stream cut short) are appended to `warnings` when given.
    Each generator is its own stream: any number may run at once, over one model."""
    sink = warnings if warnings is not None else []
    with _decoded(src, model, device, tolerant, sink, start=start, frames=frames, planes=planes,
                  precision=precision) as (_, _, chunks):
        for decoded in chunks:
            yield decoded.frames


def decode(
    src,
    dst,
    *,
    model=None,
    device: str = defaults.DEVICE,
    start: int = 0,
    frames: int | None = None,
    planes: int | None = None,
    tolerant: bool = False,
    precision: str = defaults.PRECISION,
    overwrite: bool = False,
    progress: bool = False,
) -> DecodeResult:
    """Decode the .mvt file `src` to `dst`: a video (.mp4/.mkv/.mov), a .y4m file, or a folder
    of PNG frames (a path ending in '/' or an existing folder). Audio is muxed back.
    `precision`: auto (bf16 on CUDA, fp32 on the CPU), fp32 or bf16."""
    from .codec.metadata import color_names
    from .codec.pipeline import Timings
    from .codec.precision import resolve_precision
    from .media import VideoWriter

    started = time.perf_counter()
    timings = Timings()
    warnings: list[str] = []
    concealed: list[int] = []
    count = 0
    with _decoded(src, model, device, tolerant, warnings, start=start, frames=frames, planes=planes,
                  precision=precision, timings=timings) as (reader, codec, chunks):
        h = reader.header
        audio = reader.audio() if start == 0 else None
        with VideoWriter(dst, h.width, h.height, Fraction(h.fps_num, h.fps_den), overwrite=overwrite,
                         audio=audio, color=color_names(h)) as out, \
                _progress(progress, frames or h.frame_count or None, "decode") as bar:
            for decoded in chunks:
                clock = time.perf_counter()
                out.write(decoded.frames)
                timings.add("write", clock)
                n = len(decoded.frames)
                if decoded.concealed:
                    concealed.extend(range(decoded.first_frame, decoded.first_frame + n))
                count += n
                bar.update(n)
            if count == 0:
                raise InputError(f"{src}: no frame to decode in the requested range")
        size = reader.file_bytes
        stored_frames = sum(e.frame_count for e in reader.entries)
    seconds = time.perf_counter() - started
    return DecodeResult(
        path=str(dst), frames=count, width=h.width, height=h.height, bytes=size,
        bpp=size * 8 / max(1, stored_frames * h.width * h.height), planes=min(planes or h.bits, h.bits),
        seconds=seconds, fps=count / seconds, device=str(codec.device), concealed_frames=concealed,
        warnings=warnings, timings=timings.as_dict(), precision=resolve_precision(precision, codec.device, "decode"))


def info(src) -> dict:
    """JSON-ready description of a .mvt file (needs neither torch nor the model)."""
    from .bitstream import read_info

    return read_info(src)


def _frames_array(frames) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise UsageError("frames must be uint8 RGB of shape [T, H, W, 3] or [H, W, 3]")
    return arr


def tokenize(frames, *, model=None, planes: int | None = None, device: str = defaults.DEVICE) -> np.ndarray:
    """Token grid of a clip or an image: int64 [T', H', W'] with T' = 1 + ceil((T-1)/4).

    Token = sum_k bit_k * 2**k over the first `planes` bit-planes (by default the model's
    `token_bits`: 18 for the shipped model, which codes 32), so an image and a video share one
    vocabulary of 2**planes tokens. Frames are padded to the model's
    multiples (replicating edges), so H' = ceil(H/8) for the default model."""
    import torch

    from .codec.frames import pad_frames, to_tensor
    from .models.lfq import bits_to_indices

    arr = _frames_array(frames)
    dev = resolve_device(device)
    net = _model(model, dev, "encode_bits")
    cfg = net.config
    keep = cfg.token_bits if planes is None else planes
    if not 1 <= keep <= cfg.bits:
        raise UsageError(f"planes must be from 1 to {cfg.bits}, got {planes}")
    padded = pad_frames(arr, cfg.temporal_factor, cfg.spatial_factor)
    with torch.inference_mode():
        bits = net.encode_bits(to_tensor(padded, dev))[0, :keep]
    return bits_to_indices(bits.long(), dim=0).cpu().numpy().astype(np.int64)


def detokenize(tokens, *, model=None, planes: int | None = None, device: str = defaults.DEVICE) -> np.ndarray:
    """Frames (uint8 [T, H, W, 3], T = 1 + 4(T'-1)) from a token grid [T', H', W'] of
    `planes` bits (default: the model's token_bits, as `tokenize` gives)."""
    import torch

    from .codec.frames import to_frames
    from .models.lfq import indices_to_bits

    grid = np.asarray(tokens)
    if grid.ndim == 2:
        grid = grid[None]
    if grid.ndim != 3 or not np.issubdtype(grid.dtype, np.integer):
        raise UsageError("tokens must be an integer array of shape [T', H', W'] or [H', W']")
    dev = resolve_device(device)
    net = _model(model, dev, "decode_bits")
    cfg = net.config
    keep = cfg.token_bits if planes is None else planes
    if grid.min() < 0 or grid.max() >= 2**keep:
        raise UsageError(f"tokens must lie in [0, 2**{keep})")
    bits = indices_to_bits(torch.from_numpy(grid.astype(np.int64)), keep, dim=0).to(torch.uint8)
    with torch.inference_mode():
        video = net.decode_bits(bits.unsqueeze(0).to(dev), planes=keep)
    t, h, w = video.shape[2:]
    return to_frames(video, t, h, w)
