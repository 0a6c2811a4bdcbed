"""The library entry points: files in, files out. The CLI is a thin layer over these.

Nothing here prints; progress bars appear only when `progress=True` (on stderr).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import CorruptChunkError, InputError, UsageError

DEFAULT_CHUNK_FRAMES = 17
DEFAULT_KEY_INTERVAL = 8


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


def resolve_device(device: str | None = "auto"):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str):
        from .validate import device_name

        device_name(device)  # 'gpu', 'cuda:x': one sentence rather than torch's list of backends
    elif not isinstance(device, torch.device):
        raise UsageError(f"device must be auto, cpu, cuda or a torch.device, got {type(device).__name__}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda was asked for but CUDA is not available; use --device cpu")
    return torch.device(device)


def _progress(enabled: bool, total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)  # tqdm writes to stderr


def encode(
    src,
    dst,
    *,
    model=None,
    planes: int | None = None,
    quality: int | None = None,
    bpp: float | None = None,
    device: str = "auto",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    key_interval: int = DEFAULT_KEY_INTERVAL,
    precision: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> EncodeResult:
    """Encode a video or image file `src` into the .mvt file `dst`.

    Rate: `planes` (1..K bit-planes kept), `quality` (1..8, spread over the planes) or `bpp`
    (a target in bits per pixel for the whole file); all planes when none is given. `model` is
    a loaded Tokenizer, a model name / path, or None for the default model. `precision`:
    auto, fp32 or bf16 (see vtoken.codec.precision; auto encodes in fp32)."""
    from .bitstream import MvtWriter, StreamHeader, audio_record_size, stream_overhead
    from .codec.metadata import color_code_points
    from .codec.pipeline import Timings, check_chunk_size, check_frame_area, encode_chunks, stream_chunks
    from .codec.precision import resolve_precision
    from .codec.rate import RateController, planes_for_quality
    from .entropy import FORMAT_VERSION as ENTROPY_FORMAT_VERSION
    from .fsutil import atomic_path, check_input_path, check_output_path
    from .media import VideoReader, extract_audio
    from .models import load_model
    from .validate import encode_options

    # Arguments, the input and the output are checked before the model loads (issue 11).
    encode_options(src=src, dst=dst, planes=planes, quality=quality, bpp=bpp, device=device,
                   chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                   overwrite=overwrite, progress=progress)
    check_input_path(src, "video file or folder of images", folder_ok=True)
    check_output_path(dst, overwrite, inputs=[src])
    dev = resolve_device(device)
    mode = resolve_precision(precision, dev, "encode")
    net = model if hasattr(model, "encode_bits") else load_model(model, device=dev)
    if net.identity is None:
        # A .mvt names its model by name + sha256 of the weights file; an unsaved model has neither.
        raise UsageError("the model has no identity: save it with vtoken.models.save_model and load it back")
    bits, tf = net.config.bits, net.config.temporal_factor
    if chunk_frames < 1 or (chunk_frames - 1) % tf:
        raise UsageError(f"chunk frames must be 1 + {tf}n for this model (1, {1 + tf}, {1 + 2 * tf}, ...), got {chunk_frames}")
    if planes is not None and planes > bits:
        raise UsageError(f"planes must be from 1 to {bits} for this model, got {planes}")
    if quality is not None:
        planes = planes_for_quality(quality, bits)
    rate = RateController(bits, planes=None if bpp is not None else (planes or bits), bpp=bpp)

    started = time.perf_counter()
    timings = Timings()
    with VideoReader(src) as reader:
        info = reader.info
        check_frame_area(info.width, info.height, str(src))
        check_chunk_size(chunk_frames, info.width, info.height, str(src))
        audio = extract_audio(src)
        header = StreamHeader(
            model_name=net.identity.name,
            model_sha256=bytes.fromhex(net.identity.sha256),
            width=info.width,
            height=info.height,
            fps_num=info.fps.numerator,
            fps_den=info.fps.denominator,
            frame_count=info.frame_count or 0,
            bits=bits,
            spatial_factor=net.config.spatial_factor,
            temporal_factor=net.config.temporal_factor,
            frames_per_chunk=chunk_frames,
            key_interval=key_interval,
            entropy_version=ENTROPY_FORMAT_VERSION,
            **color_code_points(info),
            extra={"source": Path(src).name, "rate": {"planes": rate.planes, "bpp": bpp}},
        )
        # A rate target counts the whole file: headers, index and the carried audio too.
        rate.fixed_bytes = stream_overhead(header) + (audio_record_size(*audio) if audio is not None else 0)
        rate.total_pixels = (info.frame_count or 0) * info.width * info.height
        with atomic_path(dst, overwrite=overwrite, inputs=[src]) as tmp, open(tmp, "wb") as f:
            writer = MvtWriter(f, header)
            with _progress(progress, info.frame_count, "encode") as bar:
                chunks = stream_chunks(reader.frames(), chunk_frames, key_interval, tf)
                totals = encode_chunks(chunks, writer, net, rate, device=dev, timings=timings,
                                       precision=mode, on_chunk=bar.update)
            if totals["frames"] == 0:
                raise InputError(f"{src}: no frames could be decoded")
            if audio is not None:
                writer.write_audio(*audio)
            writer.close()
            size = writer.bytes_written
    seconds = time.perf_counter() - started
    frames = totals["frames"]
    miss = rate.miss(size)
    return EncodeResult(
        path=str(dst),
        frames=frames,
        width=info.width,
        height=info.height,
        bytes=size,
        bpp=size * 8 / (frames * info.width * info.height),
        planes=totals["planes"],
        seconds=seconds,
        fps=frames / seconds,
        model=f"{net.identity.name} sha256:{net.identity.sha256}",
        device=str(dev),
        timings=timings.as_dict(),
        precision=mode,
        warnings=[miss] if miss else [],
    )


def _open_stream(src, tolerant: bool):
    from .bitstream import open_mvt
    from .entropy import FORMAT_VERSION
    from .errors import UnsupportedVersionError

    reader = open_mvt(src, tolerant=tolerant)
    if reader.header.entropy_version != FORMAT_VERSION:
        reader.close()
        raise UnsupportedVersionError(
            f"{src}: entropy coder version {reader.header.entropy_version}; this vtoken decodes version {FORMAT_VERSION}"
        )
    return reader


def _model_for(header, model, device):
    from .models import load_model, load_model_by_identity

    if hasattr(model, "decode_bits"):
        net = model
    elif model is not None:
        net = load_model(model, device=device)
    else:
        return load_model_by_identity(header.model_name, header.sha256_hex, device=device)
    if net.identity is not None and net.identity.sha256 != header.sha256_hex:
        from .errors import ModelError

        raise ModelError(
            f"this file needs model {header.model_name} (sha256 {header.sha256_hex[:16]}...), "
            f"not {net.identity.name} (sha256 {net.identity.sha256[:16]}...)"
        )
    return net


@contextlib.contextmanager
def _decoding(src, model, device, start: int, frames: int | None, planes: int | None, tolerant: bool,
              precision: str):
    """Checked arguments, the open stream, the model it needs, the device and the model's
    precision: (reader, model, device, precision)."""
    from .codec.precision import resolve_precision
    from .codec.preflight import check_stream
    from .fsutil import check_input_path

    _check_window(start, frames, planes)
    check_input_path(src, ".mvt file")
    dev = resolve_device(device)
    mode = resolve_precision(precision, dev, "decode")
    with _open_stream(src, tolerant) as reader:
        # Sizes, planes and damage are checked on the container alone, before the model loads.
        check_stream(reader, start, frames, planes, tolerant)
        yield reader, _model_for(reader.header, model, dev), dev, mode


def _check_window(start: int, frames: int | None, planes: int | None) -> None:
    from .validate import integer

    integer("start", start, 0, 100_000_000)
    integer("frames", frames, 1, optional=True)
    integer("planes", planes, 1, 64, optional=True)


def decode_frames(
    src,
    *,
    model=None,
    device: str = "auto",
    start: int = 0,
    frames: int | None = None,
    planes: int | None = None,
    tolerant: bool = False,
    precision: str = "auto",
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield decoded frames of a .mvt file, uint8 [t, H, W, 3] per chunk."""
    from .codec.pipeline import Timings, decode_chunks
    from .validate import decode_options

    decode_options(src=src, start=start, frames=frames, planes=planes, tolerant=tolerant, device=device,
                   precision=precision)
    sink = warnings if warnings is not None else []
    with _decoding(src, model, device, start, frames, planes, tolerant, precision) as (reader, net, dev, mode):
        for decoded in decode_chunks(
            reader, net, device=dev, start=start, count=frames, planes=planes,
            tolerant=tolerant, timings=Timings(), warnings=sink, precision=mode,
        ):
            yield decoded.frames
        sink.extend(reader.warnings)


def decode(
    src,
    dst,
    *,
    model=None,
    device: str = "auto",
    start: int = 0,
    frames: int | None = None,
    planes: int | None = None,
    tolerant: bool = False,
    precision: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> DecodeResult:
    """Decode the .mvt file `src` to `dst`: a video (.mp4/.mkv/.mov), a .y4m file, or a folder
    of PNG frames (a path ending in '/' or an existing folder). Audio is muxed back.
    `precision`: auto (bf16 on CUDA, fp32 on the CPU), fp32 or bf16."""
    from .codec.metadata import color_names
    from .codec.pipeline import Timings, decode_chunks
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
    with _decoding(src, model, device, start, frames, planes, tolerant, precision) as (reader, net, dev, mode):
        h = reader.header
        audio = _carried_audio(reader, warnings) if start == 0 and kind == "video" else None
        color = color_names(h)
        with VideoWriter(dst, h.width, h.height, Fraction(h.fps_num, h.fps_den), overwrite=overwrite,
                         audio=audio, color=color, inputs=[src]) as out, _progress(progress, frames or h.frame_count or None, "decode") as bar:
            for decoded in decode_chunks(
                reader, net, device=dev, start=start, count=frames, planes=planes,
                tolerant=tolerant, timings=timings, warnings=warnings, precision=mode,
            ):
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
        warnings.extend(reader.warnings)
        size = reader.file_bytes
        stored_frames = sum(e.frame_count for e in reader.entries)
        if h.frame_count and stored_frames < h.frame_count and frames is None:
            warnings.append(f"stream ends at frame {stored_frames} of {h.frame_count}")
    seconds = time.perf_counter() - started
    return DecodeResult(
        path=str(dst),
        frames=count,
        width=h.width,
        height=h.height,
        bytes=size,
        bpp=size * 8 / max(1, stored_frames * h.width * h.height),
        planes=min(planes or h.bits, h.bits),
        seconds=seconds,
        fps=count / seconds,
        device=str(dev),
        concealed_frames=concealed,
        warnings=warnings,
        timings=timings.as_dict(),
        precision=mode,
    )


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


def tokenize(frames, *, model=None, planes: int | None = None, device: str = "auto") -> np.ndarray:
    """Token grid of a clip or an image: int64 [T', H', W'] with T' = 1 + ceil((T-1)/4).

    Token = sum_k bit_k * 2**k over the first `planes` bit-planes (all by default), so an
    image and a video share one vocabulary of 2**K tokens. Frames are padded to the model's
    multiples (replicating edges), so H' = ceil(H/8) for the default model."""
    import torch

    from .codec.frames import pad_frames, to_tensor
    from .models import load_model
    from .models.lfq import bits_to_indices

    from .validate import integer

    arr = _frames_array(frames)
    integer("planes", planes, 1, 64, optional=True)
    dev = resolve_device(device)
    net = model if hasattr(model, "encode_bits") else load_model(model, device=dev)
    cfg = net.config
    keep = cfg.bits if planes is None else planes
    if not 1 <= keep <= cfg.bits:
        raise UsageError(f"planes must be from 1 to {cfg.bits}, got {planes}")
    padded = pad_frames(arr, cfg.temporal_factor, cfg.spatial_factor)
    with torch.inference_mode():
        bits = net.encode_bits(to_tensor(padded, dev))[0, :keep]
    return bits_to_indices(bits.long(), dim=0).cpu().numpy().astype(np.int64)


def detokenize(tokens, *, model=None, planes: int | None = None, device: str = "auto") -> np.ndarray:
    """Frames (uint8 [T, H, W, 3], T = 1 + 4(T'-1)) from a token grid [T', H', W']."""
    import torch

    from .codec.frames import to_frames
    from .models import load_model
    from .models.lfq import indices_to_bits

    from .validate import integer, token_grid

    grid = token_grid(tokens)
    integer("planes", planes, 1, 64, optional=True)
    dev = resolve_device(device)
    net = model if hasattr(model, "decode_bits") else load_model(model, device=dev)
    cfg = net.config
    keep = cfg.bits if planes is None else planes
    if not 1 <= keep <= cfg.bits:
        raise UsageError(f"planes must be from 1 to {cfg.bits}, got {planes}")
    if grid.min() < 0 or grid.max() >= 2**keep:
        raise UsageError(f"tokens must lie in [0, 2**{keep})")
    bits = indices_to_bits(torch.from_numpy(grid.astype(np.int64)), keep, dim=0).to(torch.uint8)
    with torch.inference_mode():
        video = net.decode_bits(bits.unsqueeze(0).to(dev), planes=keep)
    t, h, w = video.shape[2:]
    return to_frames(video, t, h, w)
