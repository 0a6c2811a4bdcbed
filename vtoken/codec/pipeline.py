"""The codec proper: frames -> model bits -> entropy-coded plane segments -> container
chunks, and back.

Every `key_interval`-th chunk is a key chunk of `chunk_frames` (= 1 + 4m) frames: the
tokenizer starts a new causal stream there (its first frame is coded alone) and the entropy
coder forgets everything before it, so decoding (and seeking) can start there. The chunks
between keys have 4m frames and continue the stream: the tokenizer carries its causal state
(a StreamState per stream, owned by the call, vtoken/models/stream.py), so a group of chunks
codes exactly as one long clip would, and the entropy coder carries its adaptive statistics
and the previous latent frames, which is what makes still content cheap. Memory is bounded
by one chunk whatever the video's length; on the CPU the model takes a chunk a latent frame at
a time (slices.py), so its part of that does not grow with the chunk's length either.

Decoding always entropy-decodes every stored plane (the coder's context depends on them) and
hands the model only the planes the caller asked for; from a key chunk on, every chunk goes
through the model, since each carries the causal state of the next.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Iterable, Iterator

import numpy as np

from .. import defaults
from ..bitstream import Chunk, MvtReader, MvtWriter, chunk_overhead
from ..entropy import BitplaneCoder, coder_for
from ..entropy.plane_map import decode_map, encode_map, expand as expand_map, grid as map_grid
from ..errors import CorruptChunkError, InputError, UsageError
from .coarse import coded_indices, fill
from .factor_choice import searched_reach
from .frames import frame_repeat, frame_stride, pad_frames, repeat_frames
from .hold import BitHold
from .overlap import ahead
from .plane_choice import SEGMENT_BYTES, PlaneMapper
from .precision import autocast
from .rate import RateController
from .refine import BitRefiner
from . import slices


# Largest frame the codec runs its model on (4K UHD and DCI 4K fit). The model's memory grows
# with the area (in time it is bounded: slices.py, or the chunk); larger inputs are refused up
# front instead of exhausting memory mid-way. Spatial tiling would lift this.
MAX_FRAME_AREA = 4096 * 2304


def check_frame_area(width: int, height: int, what: str, error: type = InputError) -> None:
    """Refuse frames larger than MAX_FRAME_AREA with `error` (InputError for an input video,
    StreamError for a .mvt header)."""
    if width * height > MAX_FRAME_AREA:
        raise error(f"{what}: {width}x{height} frames are larger than vtoken supports "
                    f"({MAX_FRAME_AREA} pixels, e.g. 4096x2304); scale down first, e.g. ffmpeg -vf scale=3840:-2")


# Largest chunk (frames x pixels) the decoder takes: a 4K chunk of the default length, the
# largest the default settings make. The chunk's frames are held whole (the model's work is
# sliced in time, slices.py, or whole on a GPU), so a header asking for more is refused before
# anything is allocated, and the encoder refuses to write a stream its own decoder would refuse.
MAX_CHUNK_PIXELS = defaults.CHUNK_FRAMES * MAX_FRAME_AREA


def check_chunk_size(frames_per_chunk: int, width: int, height: int, what: str, error: type = UsageError) -> None:
    """Refuse chunks of more than MAX_CHUNK_PIXELS pixels (`error`: UsageError for an encode
    setting, StreamError for a .mvt header)."""
    if frames_per_chunk * width * height > MAX_CHUNK_PIXELS:
        most = max(1, MAX_CHUNK_PIXELS // max(1, width * height))
        raise error(f"{what}: chunks of {frames_per_chunk} frames at {width}x{height} are larger than vtoken "
                    f"decodes at once ({MAX_CHUNK_PIXELS} pixels: at most {most} frames per chunk at this size)")


def expected_latent_shape(frames: int, height: int, width: int, cfg, key: bool = True) -> tuple[int, int, int]:
    """Latent (T', H', W') of a chunk of `frames` frames: what a decoder may accept. `cfg`
    holds the stream's factors (its header), which may have a finer time grid than the model."""
    tf, sf = cfg.temporal_factor, cfg.spatial_factor
    latent = 1 + -(-(frames - 1) // tf) if key else -(-frames // tf)
    return latent, -(-height // sf), -(-width // sf)


def stream_chunks(frames: Iterable[np.ndarray], chunk_frames: int, key_interval: int, temporal_factor: int):
    """(frames uint8 [t, H, W, 3], key) per chunk: key chunks hold `chunk_frames` frames, the
    chunks that continue a stream `chunk_frames - 1` (a multiple of the temporal factor). With
    one-frame chunks every chunk is a key chunk."""
    inter = chunk_frames - 1
    if inter % temporal_factor:
        raise ValueError(f"chunk_frames must be 1 + {temporal_factor}n")
    batch, index = [], 0
    for frame in frames:
        batch.append(frame)
        key = inter == 0 or index % key_interval == 0
        if len(batch) == (chunk_frames if key else inter):
            yield np.stack(batch), key
            batch, index = [], index + 1
    if batch:
        yield np.stack(batch), inter == 0 or index % key_interval == 0


@dataclass
class Timings:
    """Seconds spent per stage; `write` is filled by the caller's output. The stages run
    concurrently (overlap.py), so these are busy times and may add up to more than the wall
    clock."""

    seconds: dict = field(default_factory=lambda: defaultdict(float))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        with self._lock:
            self.seconds[stage] += now - since
        return now

    def as_dict(self) -> dict:
        with self._lock:
            return {k: round(v, 4) for k, v in self.seconds.items()}


def timed(items: Iterable, timings: Timings, stage: str) -> Iterator:
    """`items`, with the time spent producing them added to `stage`."""
    it = iter(items)
    while True:
        clock = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        timings.add(stage, clock)
        yield item


def encode_chunks(
    chunks: Iterable[tuple[np.ndarray, bool]],
    writer: MvtWriter,
    model,
    rate: RateController,
    *,
    device,
    timings: Timings,
    precision: str = "fp32",
    on_chunk=None,
    warnings: list[str] | None = None,
    repeat: int = 1,
    stride: int = 1,
    hold: float = defaults.HOLD,
    refine: int = defaults.REFINE,
    refine_loss: str = defaults.REFINE_LOSS,
    search_precision: str = "fp32",
    plane_map: bool = False,
) -> dict:
    """Code every (frames, key) chunk (see stream_chunks) into `writer`, the model seeing every
    frame `repeat` times (frames.repeat_frames) or every `stride`-th frame (coarse.py), its
    bits held with threshold `hold` (hold.py), then refined by `refine` steps of the encoder's
    search (refine.py, minimising `refine_loss`, in `search_precision`) against the frames the
    model saw; with `plane_map`, given a plane map per chunk first (plane_choice.py), the
    search then working on the bits the map sends. Returns totals.

    Three stages overlap (overlap.py): reading the next chunks, the model on the chunk after
    this one, and entropy coding + writing of this one (in the calling thread)."""
    coder = coder_for(model)
    held = BitHold(hold)  # this stream's hysteresis: it remembers the last latent frame coded
    refiner = (BitRefiner(model, refine, device, rate_weight=defaults.REFINE_RATE, loss=refine_loss,
                          precision=search_precision) if refine else None)
    mapper = PlaneMapper(model, device, precision) if plane_map else None
    # Under a rate target a searched chunk's map is chosen at the chunk's budget over what the
    # search will add to its bytes: first auto's estimate, then what the last chunk's search added.
    searched_budget = refiner is not None and mapper is not None and rate.planes is None
    growth, room = (searched_reach(refine) if searched_budget else 1.0), 1.0
    first_frame, index, kept_planes = 0, 0, []
    headed = model.has_plane_heads  # _model_latents gives its features; z is made per chunk here
    read = ahead(timed(chunks, timings, "read"), name="vtoken-read")
    coded = ahead(_model_latents(read, model, device, timings, precision, [] if warnings is None else warnings,
                                 repeat, stride), name="vtoken-model")
    try:
        for frames, key, z in coded:
            n, h, w, _ = frames.shape
            clock = time.perf_counter()
            if key:
                coder.reset()
            # The hysteresis and a model's plane heads depend on the planes this chunk keeps:
            # fixed, or (a rate target) as many as the last chunk kept; the first chunk is coded
            # once on trial (state left as it was) to learn how many fit (every chunk with plane
            # maps: a map's planes are not a uniform count). Under a rate target
            # the head is the expected count's: a chunk that then keeps a count of another head's
            # range is not coded again.
            planes = rate.planes or (kept_planes[-1] if kept_planes and mapper is None else None)
            # Planes past those the rate control can keep are not coded (RateController.enough).
            budget = dict(pixels=n * h * w, overhead=chunk_overhead, key=key, latent_frames=z.shape[1])
            enough = partial(rate.enough, **budget)
            # z for a plane count: a plane-headed model's z waits for it (z is its features here)
            z_for = (partial(_headed_latent, model, z, device=device, precision=precision) if headed
                     else lambda _planes, z=z: z)
            if planes is None and (headed or held.threshold > 0 or refiner is not None or mapper is not None):
                trial = [len(s) for s in coder.encode(held.bits(z_for(None), key, commit=False), enough)]
                planes = rate.choose(trial, dry_run=True, **budget)
                room = rate.room(trial, planes, **budget) if searched_budget else 1.0
            z = z_for(planes)
            place = dict(index=index, first_frame=first_frame, frame_count=n, key=key)
            if mapper is not None:
                clock = timings.add("entropy", clock)
                chunk, grew = _mapped_chunk(mapper, coder, held, rate, frames, z, planes, budget, repeat, stride,
                                            place, refiner, growth / room, timings)
                if searched_budget:
                    growth = grew
                clock = time.perf_counter()
            else:
                bits = held.bits(z, key, planes)
                if refiner is not None:
                    clock = timings.add("entropy", clock)
                    p1 = coder.probabilities(bits[:planes]) if refiner.rate_weight else None
                    bits = refiner.refine(model_input(frames, key, repeat, stride), z, bits, key, planes, p1)
                    held.replace(bits, z)
                    clock = timings.add("refine", clock)
                segments = coder.encode(bits, enough)
                kept = rate.choose([len(s) for s in segments], **budget)
                held.sent(kept)
                coder.commit(bits, kept)
                clock = timings.add("entropy", clock)
                chunk = Chunk(**place, latent_shape=tuple(bits.shape[1:]),
                              planes_coded=bits.shape[0],  # the model's; those past `enough` are not entropy coded
                              segments=list(segments[:kept]), symbol_counts=[int(np.prod(bits.shape[1:]))] * kept)
            writer.write_chunk(chunk)
            timings.add("write", clock)
            kept_planes.append(chunk.planes)
            first_frame += n
            index += 1
            if on_chunk is not None:
                on_chunk(n)
    finally:
        # Stop the workers before the caller closes its input: a reading thread left running
        # after a failure would decode from a container the caller frees (a crash in libav).
        coded.close()
        read.close()
    return {"frames": first_frame, "chunks": index, "planes": kept_planes}


def _mapped_chunk(mapper: PlaneMapper, coder: BitplaneCoder, held: BitHold, rate: RateController, frames: np.ndarray,
                  z: np.ndarray, planes: int, budget: dict, repeat: int, stride: int, place: dict,
                  refiner: BitRefiner | None, growth: float, timings: Timings) -> tuple[Chunk, float]:
    """The chunk of `frames` (its index, first frame, frame count and key flag in `place`)
    coded with a plane map at the bytes of `planes` planes everywhere over `growth` (what
    the search will add, per the room the budget leaves), its bits then searched by `refiner`
    where given; the coder, hysteresis, rate control, mapper and refiner move on as a decoder
    of it will. Returns the chunk and how many times the map's estimated bytes it coded."""
    clock = time.perf_counter()
    key = place["key"]
    coded = frames[coded_indices(len(frames), stride, key)] if stride > 1 else frames  # what the decoder shows
    bits, limit, counts = mapper.choose(coded, z, key, planes, held, coder, repeat, growth)
    clock = timings.add("plane map", clock)
    top = int(counts.max())
    if refiner is not None:  # the map chosen on the model's bits; the search then works on the bits it sends
        p1 = coder.probabilities(np.ascontiguousarray(bits[:top])) if refiner.rate_weight else None
        bits = refiner.refine(model_input(frames, key, repeat, stride), z, bits, key, top, p1, limit)
        clock = timings.add("refine", clock)
    held.replace(bits, z)
    plane_map = encode_map(counts, bits.shape[0])
    sent = np.ascontiguousarray(bits[:top])  # planes no block keeps are neither coded nor walked
    segments = coder.encode(sent, limit=limit)
    sizes = [len(s) for s in segments]
    coded_bytes = sum(sizes) + len(plane_map) + SEGMENT_BYTES * max(0, top - planes)
    kept = rate.choose(sizes, **{**budget, "overhead": partial(chunk_overhead, plane_map=len(plane_map))})
    if rate.planes is not None:
        kept = top  # the map spends the bytes of `planes` planes: it keeps its planes
    held.sent(kept)
    coder.commit(sent, kept, limit)
    mapper.sent(bits[:kept], limit, key)
    timings.add("entropy", clock)
    chunk = Chunk(**place, latent_shape=tuple(bits.shape[1:]), planes_coded=bits.shape[0],
                  segments=list(segments[:kept]), symbol_counts=[int((limit > k).sum()) for k in range(kept)],
                  plane_map=plane_map, map_block=mapper.block)
    return chunk, coded_bytes / max(mapper.estimate, 1.0)


def _headed_latent(model, features: np.ndarray, planes: int | None, *, device, precision: str) -> np.ndarray:
    """A plane-headed model's z, float32 [K, T', H', W'], for a chunk that keeps `planes`
    planes (None: all), from its encoder features (what _model_latents gives for it)."""
    import torch

    with torch.inference_mode(), autocast(device, precision):
        z = model.latent_for(torch.from_numpy(features[None]).to(device), planes)[0]
    return z.cpu().float().numpy()


def model_input(frames: np.ndarray, key: bool, repeat: int, stride: int) -> np.ndarray:
    """The frames the model sees of a chunk: every one `repeat` times (a finer grid than the
    model's), or every `stride`-th (a coarser one, coarse.py)."""
    return frames[coded_indices(len(frames), stride, key)] if stride > 1 else repeat_frames(frames, repeat, key)


def _model_latents(chunks: Iterable[tuple[np.ndarray, bool]], model, device, timings: Timings, precision: str,
                   warnings: list[str], repeat: int = 1, stride: int = 1):
    """(frames, key, z) per chunk, z the pre-quantization latent float32 [K, T', H', W'] (of a
    model with plane heads: its encoder features, _headed_latent's input), the tokenizer streaming
    from key chunk to key chunk. On GPU out-of-memory a chunk is split in
    two in time and retried from the state it started with (a chunk may hold fewer frames
    than the stream's maximum)."""
    import torch

    from ..models.stream import StreamState

    tf, sf = model.config.temporal_factor, model.config.spatial_factor
    stream_tf = tf * stride // repeat  # the chunks' time grid (a split must stay on it)
    per_call = slices.latents_per_call(device)
    state = StreamState()  # this stream's causal state: the model is shared, the state is not
    for frames, key in chunks:
        pending = [(frames, key)]
        while pending:
            clock = time.perf_counter()
            part, part_key = pending.pop(0)
            if part_key:
                state = StreamState()
            snapshot = state.copy()
            seen = model_input(part, part_key, repeat, stride)
            padded = pad_frames(seen, tf, sf, continuing=not part_key)
            try:
                with torch.inference_mode(), autocast(device, precision):
                    z = slices.encode(model, padded, state, part_key, device, per_call,
                                      features=model.has_plane_heads)
            except torch.cuda.OutOfMemoryError:
                if len(part) <= (1 if part_key else stream_tf):
                    raise
                if getattr(device, "type", "") == "cuda":
                    torch.cuda.empty_cache()
                state = snapshot  # the failed call may have advanced some layers
                # Split on the latent grid: the first part needs no padding and the
                # second continues the stream.
                latent = -(-(len(part) - 1) // stream_tf) if part_key else -(-len(part) // stream_tf)
                cut = (1 if part_key else 0) + stream_tf * max(1 if not part_key else 0, latent // 2)
                warnings.append(f"GPU out of memory on a {len(part)}-frame chunk: retried as {cut} + {len(part) - cut} frames")
                pending[:0] = [(part[:cut], part_key), (part[cut:], False)]
                continue
            z = z.cpu().float().numpy()  # copied at the model's precision, widened here
            timings.add("model", clock)
            yield part, part_key, z


@dataclass
class DecodedChunk:
    first_frame: int
    frames: np.ndarray  # uint8 [t, H, W, 3]
    concealed: bool = False


def _decode_bits(model, bits: np.ndarray, frames: int, header, device, precision: str, warnings: list[str],
                 state, key: bool, per_call: int, limit: np.ndarray | None = None) -> np.ndarray:
    """The `frames` frames the model decodes of one chunk (on a coarser grid than the
    model's, its coded frames only), continuing `state`, `per_call` latent frames per model
    call (slices.py), with the chunk's plane map `limit` if it has one. On GPU out-of-memory
    the chunk is decoded on the CPU instead (the stream fixes the chunk's shape, so it cannot
    be split the way the encoder splits)."""
    import torch

    x = torch.from_numpy(bits).unsqueeze(0)
    lim = None if limit is None else torch.from_numpy(limit).unsqueeze(0)
    r = frame_repeat(model.config.temporal_factor, header.temporal_factor)
    snapshot = state.copy()
    try:
        with torch.inference_mode(), autocast(device, precision):
            return slices.decode(model, x.to(device), len(bits), state, key, r, header.height, header.width,
                                 per_call, lim)[:frames]
    except torch.cuda.OutOfMemoryError:
        if getattr(device, "type", "") != "cuda":
            raise
        torch.cuda.empty_cache()
        warnings.append("GPU out of memory: a chunk was decoded on the CPU")
        cpu_model = copy.deepcopy(model).to("cpu")  # layers keep their slots: the state fits it
        cpu_state = snapshot.to("cpu")  # from before the failed call, which may have advanced it
        with torch.inference_mode(), autocast("cpu", "fp32"):
            out = slices.decode(cpu_model, x, len(bits), cpu_state, key, r, header.height, header.width,
                                slices.latents_per_call("cpu"), lim)[:frames]
        state.assign(cpu_state.to(device))  # the next chunk continues on the GPU
        return out


def read_bits(reader: MvtReader, coder: BitplaneCoder, i: int, entry, header):
    """Chunk `i`, its entropy-decoded bits and its plane map's per-position limit (None
    without one); CorruptChunkError for anything damaged."""
    chunk = reader.read_chunk(i)
    shape = tuple(chunk.latent_shape)
    want = expected_latent_shape(entry.frame_count, header.height, header.width, header, key=entry.key)
    if shape != want:
        # Never let a header make the model decode more than the video's own size.
        raise CorruptChunkError(f"chunk {i}: latent shape {shape} does not match the video ({want})", chunk=i)
    limit = None
    if chunk.plane_map is not None:
        if header.entropy_version < 3:
            raise CorruptChunkError(f"chunk {i}: a plane map in a stream of entropy version {header.entropy_version}",
                                    chunk=i)
        try:
            counts = decode_map(chunk.plane_map, (shape[0], *map_grid(shape[1:], chunk.map_block)), chunk.planes_coded)
        except CorruptChunkError as exc:
            raise CorruptChunkError(f"chunk {i}: {exc}", chunk=i) from exc
        limit = expand_map(counts, chunk.map_block, shape[1:])
        sent = [int((limit > k).sum()) for k in range(len(chunk.segments))]
        if sent != list(chunk.symbol_counts):
            raise CorruptChunkError(f"chunk {i}: its plane map sends {sent[:4]}... bits per plane, the segments "
                                    f"hold {list(chunk.symbol_counts)[:4]}...", chunk=i)
    return chunk, coder.decode(list(chunk.segments), shape, limit), limit


@dataclass
class _CodedChunk:
    """One chunk after entropy decoding: the planes the model may use (`bits` None and `use` 0
    when the chunk must be concealed)."""

    index: int
    entry: object
    bits: np.ndarray | None
    use: int
    limit: np.ndarray | None = None  # the chunk's plane map, per position


def _entropy_decoded(reader: MvtReader, coder: BitplaneCoder, cfg, begin: int, stop: int, trusted: int,
                     planes: int | None, tolerant: bool, timings: Timings, warnings: list[str]) -> Iterator[_CodedChunk]:
    """Chunks from `begin` until frame `stop`, read and entropy decoded, with the number of
    planes the model may use: after a damaged chunk none until the next key chunk (the
    entropy context is lost), after a cut segment only the planes before the cut."""
    header, entries = reader.header, reader.entries
    for i in range(begin, len(entries)):
        entry = entries[i]
        if entry.first_frame >= stop:
            return
        clock = time.perf_counter()
        if entry.key:
            coder.reset()
            trusted = cfg.bits
        try:
            chunk, bits, limit = read_bits(reader, coder, i, entry, header)
        except CorruptChunkError as exc:
            if not tolerant:
                raise
            # The chunk is lost, and with it the entropy context and the tokenizer's causal
            # state of every chunk up to the next key chunk: they are concealed too.
            warnings.append(f"{exc}; frames {entry.first_frame}-{entry.first_frame + entry.frame_count - 1} concealed")
            coder.reset()
            trusted = 0
            yield _CodedChunk(i, entry, None, 0)
            continue
        if len(chunk.segments) < (chunk.planes_listed or 0):
            trusted = min(trusted, len(chunk.segments))
        use = min(trusted, len(chunk.segments))
        if planes is not None:
            use = min(use, planes)
        if use == 0 and not tolerant:
            # A stored chunk with no usable plane only happens in a damaged stream.
            raise CorruptChunkError(f"chunk {i} has no decodable plane", chunk=i)
        timings.add("entropy", clock)
        yield _CodedChunk(i, entry, bits[:use] if use else None, use, limit)


def decode_window(reader: MvtReader, start: int, count: int | None) -> tuple[int, int] | None:
    """(index of the chunk holding frame `start`, the frame after the last one asked for), or
    None when the file holds no frame from `start` on (nothing to decode, and nothing to check)."""
    entries = reader.entries
    if not entries:
        return None
    last_frame = entries[-1].first_frame + entries[-1].frame_count
    stop = last_frame if count is None else min(last_frame, start + count)
    if start >= stop:
        return None
    return reader.chunk_for_frame(start), stop


def decode_chunks(
    reader: MvtReader,
    model,
    *,
    device,
    start: int = 0,
    count: int | None = None,
    planes: int | None = None,
    tolerant: bool = False,
    timings: Timings,
    warnings: list[str],
    precision: str = "fp32",
) -> Iterator[DecodedChunk]:
    """Yield decoded chunks covering frames [start, start + count).

    Decoding starts at the key chunk at or before the first wanted chunk. With
    `tolerant`, a damaged chunk is concealed (its frames repeat the last good frame) and the
    chunks that depend on it decode only the planes that are still trustworthy. Entropy
    decoding runs in a worker thread, ahead of the model (overlap.py)."""
    header = reader.header  # checked by the caller (Codec.check_header)
    cfg = model.config
    window = decode_window(reader, start, count)
    if window is None:
        return
    first, stop = window
    trusted = cfg.bits  # planes whose entropy context is intact since the last key chunk
    try:
        begin = reader.key_chunk_before(first)
    except CorruptChunkError as exc:
        if not tolerant:
            raise
        # No intact key chunk to start from: conceal until the next one.
        warnings.append(f"{exc}; frames before the next key chunk are concealed")
        begin, trusted = first, 0
    from ..models.stream import StreamState

    coder = coder_for(model)
    coded = ahead(_entropy_decoded(reader, coder, cfg, begin, stop, trusted, planes, tolerant, timings, warnings),
                  name="vtoken-entropy")
    previous: np.ndarray | None = None  # last frame shown, for concealment (and a coarse grid's blend)
    stride = frame_stride(cfg.temporal_factor, header.temporal_factor)
    state = StreamState()  # this stream's causal state; bound to the model call only, never across the yield
    per_call = slices.latents_per_call(device)
    try:
        for item in coded:
            entry, n = item.entry, item.entry.frame_count
            clock = time.perf_counter()
            if entry.key:
                state = StreamState()
            if item.bits is None:
                shown = previous if previous is not None else np.full((header.height, header.width, 3), 128, np.uint8)
                frames = np.broadcast_to(shown, (n, *shown.shape)).copy()
            else:
                # Chunks before the first wanted one still go through the model: they carry
                # its causal state.
                modelled = n if stride == 1 else len(coded_indices(n, stride, entry.key))
                frames = _decode_bits(model, item.bits, modelled, header, device, precision, warnings, state, entry.key,
                                      per_call, item.limit)
                if stride > 1:
                    frames = fill(frames, n, stride, entry.key, previous)
                timings.add("model", clock)
            previous = frames[-1]
            if item.index >= first:
                lo = max(start - entry.first_frame, 0)
                hi = min(stop - entry.first_frame, n)
                yield DecodedChunk(entry.first_frame + lo, frames[lo:hi], item.bits is None)
    finally:
        coded.close()  # the entropy thread stops reading before the caller closes the file
