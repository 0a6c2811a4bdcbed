"""The classic codecs through the static ffmpeg: HEVC (libx265), VVC (libvvenc), AV1 (libsvtav1).

Each (codec, config) is a `BaselineSpec`: encoder, preset, prediction structure, bit depth and
threads, all recorded with every result. The encoder writes a raw elementary stream (Annex-B
.hevc / .266, Section-5 low-overhead .obu), so the byte count is the coded video and nothing
else: no container, and x265's settings SEI (2-3 KB, a third of the stream at the lowest
rates) is switched off with `info=0`. The decoder writes raw 4:2:0 at the codec's bit depth,
which `yuv.raw_to_planes` brings to 8 bits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .ffmpeg import Run, run_timed
from .yuv import raw_to_planes

CODECS = ("hevc", "vvc", "av1")
CONFIGS = ("default", "lowdelay")

# Quality sweeps chosen so that, at 640x360, the curves span about 0.005-0.2 bpp on the eval
# clips (measured on them, see benchmarks/README.md). Lower crf/qp = more bits.
DEFAULT_QUALITIES = {
    "hevc": [18, 22, 26, 30, 34, 38, 42, 46, 51],   # x265 crf
    "vvc": [20, 25, 30, 35, 40, 45, 51],            # vvenc qp
    "av1": [20, 27, 34, 41, 48, 55, 63],            # svtav1 crf (63 is its maximum)
}


@dataclass(frozen=True)
class BaselineSpec:
    codec: str                 # hevc | vvc | av1
    config: str                # default | lowdelay
    encoder: str               # ffmpeg encoder name
    preset: str
    quality_param: str         # crf | qp
    structure: str             # "random access" | "low delay"
    gop: str                   # GOP / intra period, as configured
    bit_depth: int             # coded bit depth
    pix_fmt: str               # what the encoder is fed and the decoder writes
    stream_format: str         # ffmpeg muxer of the elementary stream
    extension: str
    bitstream: str             # what the byte count covers
    encoder_args: tuple[str, ...] = field(default_factory=tuple)  # without quality
    threads: int = 2

    def describe(self) -> dict:
        d = asdict(self)
        d["encoder_args"] = list(self.encoder_args)
        return d


def make_spec(codec: str, config: str, threads: int = 2) -> BaselineSpec:
    """The settings of one baseline. `threads` caps the encoder's and decoder's threads."""
    if codec not in CODECS:
        raise UsageError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    if config not in CONFIGS:
        raise UsageError(f"unknown config {config!r}; use default or lowdelay")
    if threads < 1:
        raise UsageError("threads must be >= 1")
    low = config == "lowdelay"
    if codec == "hevc":
        params = f"pools={threads}:info=0:log-level=error"
        args = ["-c:v", "libx265", "-preset", "medium"]
        if low:
            args += ["-tune", "zerolatency"]
        args += ["-x265-params", params]
        return BaselineSpec(
            codec, config, "libx265", "medium", "crf",
            "low delay (tune zerolatency: no B-frames, no lookahead)" if low else "random access",
            "keyint 250, min-keyint 25, scenecut off" if low else
            "keyint 250, min-keyint 25, 4 B-frames, adaptive (x265 medium defaults)",
            8, "yuv420p", "hevc", "hevc", "Annex-B HEVC elementary stream (VPS/SPS/PPS included, info SEI off)",
            tuple(args), threads)
    if codec == "vvc":
        args = ["-pix_fmt", "yuv420p10le", "-c:v", "libvvenc", "-preset", "medium", "-threads", str(threads)]
        if low:
            # vvenc's low-delay B: no picture reordering, IDR only at the start.
            args += ["-vvenc-params", "PicReordering=0:GOPSize=8:DecodingRefreshType=none"]
        return BaselineSpec(
            codec, config, "libvvenc", "medium", "qp",
            "low delay B (PicReordering=0)" if low else "random access",
            "GOP 8, IDR at frame 0 only" if low else "GOP 32, CRA intra period about 1 s (vvenc default)",
            10, "yuv420p10le", "vvc", "266", "Annex-B VVC elementary stream (parameter sets included)",
            tuple(args), threads)
    # av1
    svt = f"lp={threads}" + (":pred-struct=1" if low else "")
    args = ["-c:v", "libsvtav1", "-preset", "8", "-svtav1-params", svt]
    return BaselineSpec(
        codec, config, "libsvtav1", "8", "crf",
        "low delay (pred-struct=1)" if low else "random access",
        "mini-GOP 8, keyint default" if low else "mini-GOP 32, keyint default (about 5 s)",
        8, "yuv420p", "obu", "obu",
        "AV1 Section-5 low-overhead OBU stream (sequence header and 2-byte temporal delimiters included; no IVF)",
        tuple(args), threads)


def encode_command(exe: str, spec: BaselineSpec, quality: int, src: str | Path, dst: str | Path) -> list[str]:
    """The exact ffmpeg command line that encodes the reference y4m `src` to stream `dst`."""
    return [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-an",
            *spec.encoder_args, f"-{spec.quality_param}", str(int(quality)),
            "-f", spec.stream_format, str(dst)]


def decode_command(exe: str, spec: BaselineSpec, src: str | Path, dst: str | Path) -> list[str]:
    """The exact ffmpeg command line that decodes stream `src` to raw 4:2:0 `dst`."""
    return [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", str(spec.threads),
            "-i", str(src), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", spec.pix_fmt, str(dst)]


@dataclass
class BaselineOutput:
    bytes: int
    planes: np.ndarray        # uint8 [T, H*3/2, W], the decoded frames at 8 bits
    encode: Run
    decode: Run
    encode_command: list[str]
    decode_command: list[str]


def run_baseline(exe: str, spec: BaselineSpec, quality: int, ref_y4m: str | Path, width: int, height: int,
                 workdir: str | Path, nice: int = 0) -> BaselineOutput:
    """Encode the reference at one quality, count the stream's bytes, decode it back."""
    workdir = Path(workdir)
    stem = f"{spec.codec}-{spec.config}-{spec.quality_param}{int(quality)}"
    stream = workdir / f"{stem}.{spec.extension}"
    raw = workdir / f"{stem}.yuv"
    enc_cmd = encode_command(exe, spec, quality, ref_y4m, stream)
    dec_cmd = decode_command(exe, spec, stream, raw)
    try:
        enc = run_timed(enc_cmd, cwd=workdir, nice=nice)
        nbytes = stream.stat().st_size
        dec = run_timed(dec_cmd, cwd=workdir, nice=nice)
        planes = raw_to_planes(raw.read_bytes(), width, height, spec.bit_depth)
    finally:
        stream.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
    return BaselineOutput(nbytes, planes, enc, dec, enc_cmd, dec_cmd)
