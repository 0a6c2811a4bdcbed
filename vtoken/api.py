"""The library entry points: files in, files out. The CLI is a thin layer over these.

Nothing here prints; progress bars appear only when `progress=True` (on stderr).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

from . import defaults
from .device import resolve_device
from .errors import CorruptChunkError, InputError, UsageError

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
    temporal_factor: int | None = None  # frames per latent frame in the stream (its header)
    # temporal_factor="auto": per grid tried, {"factor", "bpp", "lpips", "planes"} of the first chunk
    factor_trials: list[dict] = field(default_factory=list)

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
    temporal_factor: int | str | None = None,
    hold: float = defaults.HOLD,
    refine: int | None = None,
    refine_loss: str = defaults.REFINE_LOSS,
    plane_map: bool = False,
) -> EncodeResult:
    """Encode a video or image file `src` into the .mvt file `dst`.

    Rate: `planes` (1..K bit-planes kept), `quality` (1..8, spread over the planes) or `bpp`
    (a target in bits per pixel for the whole file); all planes when none is given. `model` is
    a loaded Tokenizer, a model name / path, or None for the default model. `precision`:
    auto, fp32 or bf16 (see vtoken.codec.precision; auto encodes in fp32 and searches, with
    `refine`, in bf16 where the hardware has it).
    `temporal_factor`: frames per latent frame (None: the model's, 4). At 2 or 1 the model
    codes every frame 2 or 4 times: about that many times the bits and the encode / decode
    time at equal planes, and higher quality than more planes buy. At 8, 12, ... 32 it codes
    every 2nd, 3rd, ... 8th frame and the decoder blends the frames between (vtoken.codec.coarse):
    fewer bits, and at low rates on slow motion more quality per bit.
    "auto" (needs `bpp`) codes the first chunk at the target on each grid and keeps the one
    with the lowest LPIPS within the target (vtoken.codec.factor_choice); where that grid
    keeps every plane under the target, shorter key chunks (every chunk a key chunk) are
    tried too and kept when they score better. The result's `factor_trials` say what each
    gave. `hold`: the encoder's hysteresis on predicted latent frames, the threshold in full
    up to defaults.HOLD_FULL_PLANES kept planes and that over the planes of it above
    (vtoken.codec.hold; 0 codes the model's signs as they are).
    `refine`: steps of the encoder's search (vtoken.codec.refine): each latent frame's bits
    refined against the decoder for the loss `refine_loss` names, at about `refine` x 0.1 s
    per 640x360 frame on 2 CPU cores (0: off; None: defaults.REFINE_AUTO, 2 steps, with temporal
    factor auto, whose trials take most of its time, and 0 on a fixed grid; with auto the grid is
    chosen on unsearched trials among the model's grid and coarser ones, then the stream is
    searched).
    `refine_loss`: what the search minimises, "lpips" (L1 + LPIPS, the training loss) or "l1"
    (L1 alone: pixel fidelity, MS-SSIM and PSNR, in about three quarters of the time); one
    other than "lpips" needs a search (`refine` > 0, or None with temporal factor auto).
    `plane_map`: each chunk spends its bytes block by block where they buy the most LPIPS
    (vtoken.codec.plane_choice: 12-15 decodes of every chunk; entropy format 3); with `refine`, the map
    is chosen first and the search works on the bits it sends."""
    from .codec.codec import Codec
    from .codec.pipeline import Timings
    from .fsutil import atomic_path, check_input_path, check_output_path
    from .media import VideoReader, count_frames, extract_audio
    from .validate import encode_options

    # Arguments, the input and the output are checked before the model loads.
    encode_options(src=src, dst=dst, planes=planes, quality=quality, bpp=bpp, device=device,
                   chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                   overwrite=overwrite, progress=progress, temporal_factor=temporal_factor, hold=hold,
                   refine=refine, refine_loss=refine_loss, plane_map=plane_map)
    check_input_path(src, "video file or folder of images", folder_ok=True)
    check_output_path(dst, overwrite, inputs=[src])
    dev = resolve_device(device)
    codec = Codec(_model(model, dev, "encode_bits"), dev)
    started = time.perf_counter()
    timings = Timings()
    with VideoReader(src) as reader:
        info = reader.info
        # A rate target budgets each key chunk with the chunks after it, so it needs the length
        # (Y4M, Matroska and MPEG-PS headers do not say it; counting packets does not decode).
        total = count_frames(src) if bpp is not None and info.frame_count is None else None
        audio = extract_audio(src)
        with atomic_path(dst, overwrite=overwrite, inputs=[src]) as tmp, open(tmp, "wb") as f, \
                _progress(progress, info.frame_count, "encode") as bar:
            done = codec.compress(reader.frames(), f, info, planes=planes, quality=quality, bpp=bpp,
                                  chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                                  audio=audio, source=str(src), timings=timings, on_chunk=bar.update,
                                  temporal_factor=temporal_factor, hold=hold, refine=refine, refine_loss=refine_loss,
                                  total_frames=total, plane_map=plane_map)
    seconds = time.perf_counter() - started
    size = done.bytes  # as written: a pipe or device written through has no size afterwards
    ident = codec.model.identity
    return EncodeResult(
        path=str(dst), frames=done.frames, width=info.width, height=info.height, bytes=size,
        bpp=size * 8 / (done.frames * info.width * info.height), planes=done.planes, seconds=seconds,
        fps=done.frames / seconds, model=f"{ident.name} sha256:{ident.sha256}", device=str(dev),
        timings=timings.as_dict(), precision=done.precision, chunk_frames=done.header.frames_per_chunk,
        key_interval=done.header.key_interval,
        warnings=done.warnings, temporal_factor=done.header.temporal_factor,
        factor_trials=[asdict(t) for t in done.factor_trials])


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
    open and the chunks' threads stopped again on the way out, whatever happens. The stream's
    header and chunks are checked on the container alone (Codec.preflight) before the model
    loads."""
    from .bitstream import open_mvt
    from .codec.codec import Codec
    from .fsutil import check_input_path

    check_input_path(src, ".mvt file")
    dev = resolve_device(device)
    with open_mvt(src, tolerant=tolerant) as reader:
        Codec.preflight(reader, start=window.get("start", 0), frames=window.get("frames"),
                        planes=window.get("planes"), tolerant=tolerant, src=src)
        codec = Codec(_model_for(reader.header, model, dev), dev)
        chunks = codec.decompress(reader, tolerant=tolerant, warnings=warnings, preflighted=True, **window)
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
    from .validate import decode_options

    decode_options(src=src, start=start, frames=frames, planes=planes, tolerant=tolerant, device=device,
                   precision=precision)
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
    `precision`: auto (bf16 on CUDA and on a CPU with bf16 instructions, fp32 elsewhere), fp32
    or bf16."""
    from .codec.metadata import color_names
    from .codec.pipeline import Timings
    from .codec.precision import resolve_precision
    from .fsutil import check_output_path
    from .media import VideoWriter, output_kind
    from .validate import decode_options

    decode_options(src=src, dst=dst, start=start, frames=frames, planes=planes, tolerant=tolerant,
                   device=device, precision=precision, overwrite=overwrite, progress=progress)
    kind = output_kind(dst)
    check_output_path(dst, overwrite, inputs=[src], directory=kind == "png")
    started = time.perf_counter()
    timings = Timings()
    warnings: list[str] = []
    concealed: list[int] = []
    count = 0
    with _decoded(src, model, device, tolerant, warnings, start=start, frames=frames, planes=planes,
                  precision=precision, timings=timings) as (reader, codec, chunks):
        h = reader.header
        audio = _carried_audio(reader, warnings) if start == 0 and kind == "video" else None
        with VideoWriter(dst, h.width, h.height, Fraction(h.fps_num, h.fps_den), overwrite=overwrite,
                         audio=audio, color=color_names(h), inputs=[src]) as out, \
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
            if len(concealed) == count:
                # Every frame is a concealment: that is a failure, not an output.
                raise CorruptChunkError(f"{src}: every frame was concealed; nothing could be decoded")
        size = reader.file_bytes
        stored_frames = sum(e.frame_count for e in reader.entries)
    seconds = time.perf_counter() - started
    return DecodeResult(
        path=str(dst), frames=count, width=h.width, height=h.height, bytes=size,
        bpp=size * 8 / max(1, stored_frames * h.width * h.height), planes=min(planes or h.bits, h.bits),
        seconds=seconds, fps=count / seconds, device=str(codec.device), concealed_frames=concealed,
        warnings=warnings, timings=timings.as_dict(), precision=resolve_precision(precision, codec.device, "decode"))


def _carried_audio(reader, warnings: list[str]):
    """The stream's audio, or None with a warning when its record or its data is broken: a
    broken audio record never stops the video."""
    from .errors import VtokenError
    from .media.audio import check_audio_blob

    try:
        audio = reader.audio()
        check_audio_blob(audio)
        return audio
    except VtokenError as exc:
        warnings.append(f"audio dropped: {exc}")
        return None


def info(src) -> dict:
    """JSON-ready description of a .mvt file (needs neither torch nor the model)."""
    from .bitstream import read_info
    from .fsutil import check_input_path
    from .validate import path

    check_input_path(path("src", src), ".mvt file")
    return read_info(src)


def _frames_array(frames) -> np.ndarray:
    from .validate import frames_array

    return frames_array(frames)


def _token_planes(cfg, planes: int | None) -> int:
    """Planes that make a token: the model's token_bits by default, at most its K and the 62
    an int64 index holds."""
    from .models.config import MAX_TOKEN_BITS

    keep = cfg.token_bits if planes is None else planes
    top = min(cfg.bits, MAX_TOKEN_BITS)
    if not 1 <= keep <= top:
        raise UsageError(f"planes must be from 1 to {top} (a token index is an int64), got {planes}")
    return keep


def tokenize(frames, *, model=None, planes: int | None = None, device: str = defaults.DEVICE) -> np.ndarray:
    """Token grid of a clip or an image: int64 [T', H', W'] with T' = 1 + ceil((T-1)/4).

    Token = sum_k bit_k * 2**k over the first `planes` bit-planes (by default the model's
    `token_bits`: 18 for the shipped model, which codes 32), so an image and a video share one
    vocabulary of 2**planes tokens (a model with plane heads encodes for that many planes, as a
    stream keeping them would). Frames are padded to the model's
    multiples (replicating edges), so H' = ceil(H/8) for the default model."""
    import torch

    from .codec import slices
    from .codec.frames import pad_frames
    from .models.lfq import bits_to_indices
    from .models.stream import StreamState

    from .validate import plane_count

    arr = _frames_array(frames)
    plane_count("planes", planes, optional=True)
    dev = resolve_device(device)
    net = _model(model, dev, "encode_bits")
    cfg = net.config
    keep = _token_planes(cfg, planes)
    padded = pad_frames(arr, cfg.temporal_factor, cfg.spatial_factor)
    with torch.inference_mode():  # a latent frame or a few per model call (slices.py): memory stays flat
        z = slices.encode(net, padded, StreamState(), True, dev, slices.latents_per_call(dev), planes=keep)
    bits = (z[:keep] >= 0).to(torch.uint8)
    return bits_to_indices(bits.long(), dim=0).cpu().numpy().astype(np.int64)


def detokenize(tokens, *, model=None, planes: int | None = None, device: str = defaults.DEVICE) -> np.ndarray:
    """Frames (uint8 [T, H, W, 3], T = 1 + 4(T'-1)) from a token grid [T', H', W'] of
    `planes` bits (default: the model's token_bits, as `tokenize` gives)."""
    import torch

    from .codec import slices
    from .models.lfq import indices_to_bits
    from .models.stream import StreamState

    from .validate import plane_count, token_grid

    grid = token_grid(tokens)
    plane_count("planes", planes, optional=True)
    dev = resolve_device(device)
    net = _model(model, dev, "decode_bits")
    cfg = net.config
    keep = _token_planes(cfg, planes)
    if grid.min() < 0 or grid.max() >= 2**keep:
        raise UsageError(f"tokens must lie in [0, 2**{keep})")
    bits = indices_to_bits(torch.from_numpy(grid.astype(np.int64)), keep, dim=0).to(torch.uint8)
    _, h, w = grid.shape
    sf = cfg.spatial_factor
    with torch.inference_mode():
        return slices.decode(net, bits.unsqueeze(0).to(dev), keep, StreamState(), True, 1, h * sf, w * sf,
                             slices.latents_per_call(dev))
