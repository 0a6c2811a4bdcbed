"""The codec surface, symmetric as CompressAI's compress / decompress: one loaded model as a
codec. It owns everything between frames and the container: the stream header (built on
encode, checked on decode: entropy format, model identity, factors, frame and chunk size),
the rate overhead (the whole file: headers, index and carried audio), and the chunk loop
(pipeline.py). The library API (api.py) keeps files and results.

Hostile streams: `Codec.preflight` checks a stream's header and chunks on the container alone
(preflight.py), so a caller can run it before loading the model (api.py does); `decompress`
runs it itself unless told it already ran.

What is safe to share: a `Codec` and its model hold no stream state, so one instance (or one
model under several instances) serves any number of threads and interleaved generators.
Every `compress` / `decompress` call owns its stream: the tokenizer's StreamState, the
entropy coder, the rate controller, the stage threads and the warnings list.

Warnings travel one way: the codec appends them to the call's `warnings` list (the encode
result's, or the list given to `decompress`); the API hands that list back in its result and
the CLI prints it. Nothing here logs or prints.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from .. import defaults
from ..bitstream import MvtReader, MvtWriter, StreamHeader, audio_record_size, stream_overhead
from ..errors import InputError, ModelError, StreamError, UsageError
from . import factor_choice
from .frames import frame_repeat, frame_stride, model_frames, stream_factors
from .metadata import color_code_points
from .pipeline import (DecodedChunk, Timings, check_chunk_size, check_frame_area, decode_chunks, encode_chunks,
                       read_bits, stream_chunks)
from .preflight import check_container_header, check_stream
from .precision import resolve_precision
from .rate import RateController, planes_for_quality
from .refine import refine_method_fields, scored_stride


@dataclass
class Compressed:
    """What `Codec.compress` wrote: the header, frames and chunks, planes kept per chunk."""

    header: StreamHeader
    frames: int
    chunks: int
    planes: list[int]
    precision: str
    warnings: list[str] = field(default_factory=list)
    bytes: int = 0  # the whole file as written (a pipe or device has no size to ask for afterwards)
    factor_trials: list = field(default_factory=list)  # temporal_factor="auto": factor_choice.FactorTrial
    projected_bpp: float | None = None  # a rate target: the first group's rate as its key chunk projected it


class Codec:
    """`model` (a loaded Tokenizer) on `device` (a torch.device, see vtoken.device)."""

    def __init__(self, model, device):
        self.model = model
        self.device = device
        self.config = model.config

    # -- the stream header ------------------------------------------------------------------
    def stream_header(self, info, *, chunk_frames: int = defaults.CHUNK_FRAMES,
                      key_interval: int = defaults.KEY_INTERVAL, source: str | None = None,
                      rate: dict | None = None, temporal_factor: int | None = None,
                      hold: float = 0.0, refine: int = 0, refine_loss: str = defaults.REFINE_LOSS,
                      search_precision: str = "fp32", plane_map: bool = False) -> StreamHeader:
        """The header of a stream coding a video described by `info` (a media VideoInfo), with
        `temporal_factor` frames per latent frame (frames.stream_factors; None: the model's)."""
        from ..entropy import format_version

        net, cfg = self.model, self.config
        if net.identity is None:
            # A .mvt names its model by name + sha256 of the weights file; an unsaved model has neither.
            raise UsageError("the model has no identity: save it with vtoken.models.save_model and load it back")
        tf = cfg.temporal_factor if temporal_factor is None else temporal_factor
        if isinstance(tf, bool) or not isinstance(tf, int) or tf not in stream_factors(cfg.temporal_factor):
            grids = ", ".join(str(d) for d in reversed(stream_factors(cfg.temporal_factor)))
            raise UsageError(f"temporal factor must be one of {grids} for this model (its own is "
                             f"{cfg.temporal_factor}), got {tf!r}")
        if chunk_frames < 1 or (chunk_frames - 1) % tf:
            raise UsageError(f"chunk frames must be 1 + {tf}n for this model (1, {1 + tf}, {1 + 2 * tf}, ...), "
                             f"got {chunk_frames}")
        if key_interval < 1:
            raise UsageError(f"key interval must be at least 1 chunk, got {key_interval}")
        check_frame_area(info.width, info.height, source or "input")
        # The encoder refuses to write a stream its own decoder would refuse.
        check_chunk_size(model_frames(chunk_frames, cfg.temporal_factor, tf), info.width, info.height, source or "input")
        # What chose the bits; the decoder needs none of it.
        searched = ({"refine": int(refine), "refine_loss": refine_loss, "refine_precision": search_precision,
                     **refine_method_fields(refine)} if refine else {})
        if refine and refine_loss == "lpips":
            searched["refine_lpips_stride"] = scored_stride(refine)
        extra = {"rate": rate or {}, "hold": float(hold), **searched, **({"plane_map": True} if plane_map else {})}
        if source is not None:
            extra = {"source": Path(source).name, **extra}
        return StreamHeader(
            model_name=net.identity.name, model_sha256=bytes.fromhex(net.identity.sha256),
            width=info.width, height=info.height, fps_num=info.fps.numerator, fps_den=info.fps.denominator,
            frame_count=info.frame_count or 0, bits=cfg.bits, spatial_factor=cfg.spatial_factor,
            temporal_factor=tf, frames_per_chunk=chunk_frames, key_interval=key_interval,
            entropy_version=format_version(net.entropy_predictor, plane_map), **color_code_points(info), extra=extra)

    def check_header(self, header: StreamHeader, src="stream") -> None:
        """Refuse a stream this codec cannot decode: entropy format, frame and chunk size (the
        model-free part, preflight.check_container_header), then model identity and factors."""
        check_container_header(header, src)
        ident = self.model.identity
        if ident is not None and ident.sha256 != header.sha256_hex:
            raise ModelError(
                f"this file needs model {header.model_name} (sha256 {header.sha256_hex[:16]}...), "
                f"not {ident.name} (sha256 {ident.sha256[:16]}...)")
        from ..entropy import decodable_versions, format_version

        want = format_version(self.model.entropy_predictor)
        if header.entropy_version not in decodable_versions(self.model.entropy_predictor):
            raise StreamError(f"{src}: entropy coder version {header.entropy_version}, but model {header.model_name} "
                              f"codes version {want}: the file is damaged")
        cfg = self.config
        # A stream's time grid may be finer or coarser than the model's (frames.stream_factors).
        if ((header.bits, header.spatial_factor) != (cfg.bits, cfg.spatial_factor)
                or header.temporal_factor not in stream_factors(cfg.temporal_factor)):
            raise StreamError(f"stream has {header.bits} bits, factors {header.spatial_factor}/{header.temporal_factor}; "
                              f"the model has {cfg.bits}, {cfg.spatial_factor}/{cfg.temporal_factor}")
        check_chunk_size(model_frames(header.frames_per_chunk, cfg.temporal_factor, header.temporal_factor),
                         header.width, header.height, str(src), StreamError)

    @staticmethod
    def preflight(reader: MvtReader, *, start: int = 0, frames: int | None = None, planes: int | None = None,
                  tolerant: bool = False, src="stream") -> None:
        """The checks a stream passes before anything expensive runs, on the container alone
        (no model needed): the header (entropy format, frame and chunk size), the window's
        planes and (strict) every chunk of the window intact, or (tolerant) at least one."""
        check_stream(reader, start, frames, planes, tolerant, src=src)

    def rate(self, planes: int | None = None, quality: int | None = None, bpp: float | None = None) -> RateController:
        """The rate controller for one of planes / quality / bpp (all planes when none)."""
        if sum(x is not None for x in (planes, quality, bpp)) > 1:
            raise UsageError("give only one of planes/bits, quality or bpp")
        bits = self.config.bits
        if quality is not None:
            planes = planes_for_quality(quality, bits)
        return RateController(bits, planes=None if bpp is not None else (planes or bits), bpp=bpp)

    # -- compress / decompress -----------------------------------------------------------------
    def compress(self, frames: Iterable[np.ndarray], out: BinaryIO, info, *, planes: int | None = None,
                 quality: int | None = None, bpp: float | None = None,
                 chunk_frames: int = defaults.CHUNK_FRAMES, key_interval: int = defaults.KEY_INTERVAL,
                 precision: str = defaults.PRECISION, audio: tuple[bytes, str] | None = None,
                 source: str | None = None, timings: Timings | None = None, on_chunk=None,
                 temporal_factor: int | str | None = None, hold: float = defaults.HOLD,
                 refine: int | None = None, refine_loss: str = defaults.REFINE_LOSS,
                 total_frames: int | None = None, plane_map: bool = False) -> Compressed:
        """Code uint8 [H, W, 3] `frames` of a video described by `info` into the .mvt stream
        `out` (a binary file), with `audio` (data, description) carried as is. A
        `temporal_factor` below the model's gives every frame more latent frames: the model
        codes each frame model factor / temporal_factor times (more bits, higher quality);
        one above it (2 to 8 times the model's) codes every 2nd to 8th frame and the
        decoder blends the others (fewer bits; coarse.py); "auto" (with `bpp`) chooses it by
        coding the first chunk on each grid, and where the best grid keeps every plane under the
        target, on shorter key chunks too (factor_choice.py; the stream then has those). `hold`:
        the threshold of the encoder's hysteresis on predicted latent frames (hold.py; 0 codes
        the model's signs as they are). `refine`: steps of the encoder's search (refine.py; 0:
        off; None: defaults.REFINE_AUTO with "auto", else 0; "auto" chooses the grid on
        unsearched trials among the model's grid and coarser ones, factor_choice.searched_finest,
        then searches its stream), minimising `refine_loss` (defaults.REFINE_LOSSES).
        `total_frames`: the input's length where `info` does not say it (a rate target budgets by
        it; rate.py).
        `plane_map`: each chunk spends its bytes where they buy the most LPIPS, block by block
        (plane_choice.py; entropy format 3; with "auto", the grid is chosen without maps)."""
        from ..validate import refine_loss_name, refine_steps

        rate = self.rate(planes, quality, bpp)
        refine = refine_steps(refine, temporal_factor=temporal_factor)  # for callers without vtoken.encode's checks
        refine_loss_name(refine_loss, refine=refine)
        mode = resolve_precision(precision, self.device, "encode")
        search_mode = resolve_precision(precision, self.device, "search")
        trials = []
        if temporal_factor == factor_choice.AUTO:
            if bpp is None:
                raise UsageError(factor_choice.NEEDS_BPP)
            frames = iter(frames)
            first = list(itertools.islice(frames, chunk_frames))
            trials, streams = factor_choice.run_trials(self, first, info, bpp, chunk_frames=chunk_frames,
                                                       precision=precision, source=source,
                                                       lpips_device=str(self.device), hold=hold,
                                                       key_interval=key_interval, total_frames=total_frames,
                                                       finest=factor_choice.searched_finest(
                                                           self.config.temporal_factor, refine),
                                                       refine=refine)
            best = factor_choice.chosen(trials, bpp) if trials else None
            temporal_factor = best.factor if best else None
            if best and best.chunk_frames:  # the grid's every plane was under the target: more key chunks
                chunk_frames, key_interval = best.chunk_frames, best.key_interval
            kept = streams.get((best.factor, best.chunk_frames)) if best else None
            after = next(frames, None)
            if after is None and audio is None and not refine and not plane_map and kept is not None:
                # The input was this one chunk: the chosen trial coded it exactly as the stream
                # would (same header, same budget, unsearched), so its bytes are the stream.
                data, done = kept
                out.write(data)
                if on_chunk is not None:
                    on_chunk(done.frames)
                return dataclasses.replace(done, factor_trials=trials)
            frames = itertools.chain(first, [] if after is None else [after], frames)
        header = self.stream_header(info, chunk_frames=chunk_frames, key_interval=key_interval, source=source,
                                    rate={"planes": rate.planes, "bpp": None if bpp is None else float(bpp)},
                                    temporal_factor=temporal_factor,
                                    hold=hold, refine=refine, refine_loss=refine_loss, search_precision=search_mode,
                                    plane_map=plane_map)
        # A rate target counts the whole file: headers, index and the carried audio too.
        rate.fixed_bytes = stream_overhead(header) + (audio_record_size(*audio) if audio is not None else 0)
        rate.total_pixels = (info.frame_count or total_frames or 0) * info.width * info.height
        rate.key_interval = header.key_interval  # a key chunk is budgeted for its group (rate.py)
        rate.inter_pixels = (header.frames_per_chunk - 1) * info.width * info.height
        warnings: list[str] = []
        writer = MvtWriter(out, header)
        chunks = stream_chunks(frames, chunk_frames, key_interval, header.temporal_factor)
        totals = encode_chunks(chunks, writer, self.model, rate, device=self.device, timings=timings or Timings(),
                               precision=mode, on_chunk=on_chunk, warnings=warnings,
                               repeat=frame_repeat(self.config.temporal_factor, header.temporal_factor),
                               stride=frame_stride(self.config.temporal_factor, header.temporal_factor), hold=hold,
                               refine=refine, refine_loss=refine_loss, search_precision=search_mode,
                               plane_map=plane_map)
        if totals["frames"] == 0:
            raise InputError(f"{source or 'input'}: no frames could be decoded")
        if audio is not None:
            writer.write_audio(*audio)
        writer.close()
        size = writer.bytes_written
        miss = rate.miss(size)  # a target missed by more than rate.TOLERANCE says what it got
        if miss:
            warnings.append(miss)
        return Compressed(header, totals["frames"], totals["chunks"], totals["planes"], mode, warnings, size, trials,
                          rate.first_projection)

    def decompress(self, reader: MvtReader, *, start: int = 0, frames: int | None = None,
                   planes: int | None = None, tolerant: bool = False, precision: str = defaults.PRECISION,
                   warnings: list[str], timings: Timings | None = None,
                   preflighted: bool = False) -> Iterator[DecodedChunk]:
        """Decoded chunks covering frames [start, start + frames) of the open stream. The
        arguments, the header and (unless `preflighted`: the caller ran `preflight` on this
        reader and window) the chunks are checked now (before the first chunk is asked for); the
        reader's own warnings (a damaged file read tolerantly) join `warnings` at the end.
        Close the iterator (or exhaust it) before closing `reader`."""
        from ..validate import integer, plane_count

        integer("start", start, 0, 100_000_000)
        integer("frames", frames, 1, optional=True)
        plane_count("planes", planes, optional=True)
        if not preflighted:
            self.preflight(reader, start=start, frames=frames, planes=planes, tolerant=tolerant)
        self.check_header(reader.header)
        mode = resolve_precision(precision, self.device, "decode")
        chunks = decode_chunks(reader, self.model, device=self.device, start=start, count=frames, planes=planes,
                               tolerant=tolerant, timings=timings or Timings(), warnings=warnings, precision=mode)
        return self._decompressed(reader, chunks, frames is None, warnings)

    @staticmethod
    def _decompressed(reader: MvtReader, chunks: Iterator[DecodedChunk], whole: bool, warnings: list[str]):
        try:
            yield from chunks
        finally:
            chunks.close()  # its entropy thread stops before the caller closes the file
        warnings.extend(reader.warnings)
        stored = sum(e.frame_count for e in reader.entries)
        expected = reader.header.frame_count
        if whole and expected and stored < expected:
            warnings.append(f"stream ends at frame {stored} of {expected}")

    def entropy_bits(self, reader: MvtReader) -> Iterator[tuple[int, np.ndarray]]:
        """(chunk index, uint8 bits [planes, T', H', W']) of every stored chunk, entropy
        decoded in order: what the decoder's model receives (for cross-machine checks; where a
        plane map withholds a bit, the coder's prediction that stands for it)."""
        from ..entropy import coder_for

        self.check_header(reader.header)
        coder = coder_for(self.model)
        for entry in reader.entries:
            if entry.key:
                coder.reset()
            yield entry.index, read_bits(reader, coder, entry.index, entry, reader.header)[1]
