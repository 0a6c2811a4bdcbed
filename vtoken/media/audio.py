"""Audio pass-through: the input's audio packets are copied, never re-encoded.

`extract_audio(path)` remuxes every usable audio stream into an in-memory Matroska file (it
holds any codec) and returns (blob, description). `AudioMuxer` puts those packets into an
output container next to the video, interleaved by time. Packet payloads and counts are
unchanged; timestamps keep their sign (AAC priming stays before 0, so A/V sync is kept) but
Matroska stores milliseconds: on the way out they are turned back into sample units and
snapped onto the codec's frame grid (1024 samples for AAC...) when within 1 ms of it, which
restores the original timestamps of fixed-frame-size codecs exactly; others keep 1 ms precision.
"""

from __future__ import annotations

import io
from fractions import Fraction
import logging
from pathlib import Path

import av

from ..errors import InputError
from .reader import open_container

log = logging.getLogger(__name__)

BLOB_FORMAT = "matroska"
_CHECK_PACKETS = 8  # packets decoded per stream to tell usable audio from broken audio


def _describe(stream, packets: int) -> str:
    cc = stream.codec_context
    layout = getattr(getattr(cc, "layout", None), "name", None) or f"{cc.channels} ch"
    name = getattr(cc.codec, "canonical_name", None) or cc.name  # 'mp3', not 'mp3float'
    return f"{name} {cc.sample_rate} Hz {layout}, {packets} packets"


def _decodes(stream, packets) -> bool:
    """Whether the first packets decode with the stream's own decoder (audio that the local
    ffmpeg cannot decode at all is kept: it is copied, not decoded; only data that the decoder
    rejects counts as broken)."""
    try:
        for p in packets[:_CHECK_PACKETS]:
            stream.codec_context.decode(p)
        return True
    except av.error.DecoderNotFoundError:
        return True
    except (av.error.FFmpegError, ValueError):
        return False


def extract_audio(path) -> tuple[bytes, str] | None:
    """(matroska blob, description) with the input's audio streams copied untouched, or None
    when the file has no audio or none of it is usable (a warning is logged for broken audio;
    the video is unaffected). Raises InputError only when the file itself cannot be opened."""
    path = Path(path)
    container = open_container(path)
    try:
        streams = list(container.streams.audio)
        if not streams:
            return None
        packets: dict[int, list] = {s.index: [] for s in streams}
        try:
            for packet in container.demux(streams):
                if packet.dts is None or not packet.size:
                    continue  # demuxer flush packets carry no data
                packets[packet.stream.index].append(packet)
        except av.error.FFmpegError as exc:
            log.warning("%s: audio demuxing stopped early: %s", path, exc)
        buf = io.BytesIO()
        descriptions = []
        # negative timestamps (encoder priming) are kept rather than shifting the audio late
        # bitexact: no random segment UID or muxer version string, so the same input gives
        # byte-identical .mvt files.
        with av.open(buf, "w", format=BLOB_FORMAT, options={"avoid_negative_ts": "disabled", "fflags": "+bitexact"}) as out:
            for s in streams:
                plist = packets[s.index]
                if not plist:
                    log.warning("%s: audio stream %d has no packets; skipped", path, s.index)
                    continue
                if not _decodes(s, plist):
                    log.warning("%s: audio stream %d (%s) does not decode; skipped", path, s.index, s.codec_context.name)
                    continue
                try:
                    o = out.add_stream_from_template(s)
                except (av.error.FFmpegError, ValueError) as exc:
                    log.warning("%s: audio stream %d cannot be copied (%s); skipped", path, s.index, exc)
                    continue
                descriptions.append((o, plist, _describe(s, len(plist))))
            if not descriptions:
                return None
            try:
                for o, plist, _ in descriptions:
                    for p in plist:
                        p.stream = o
                        out.mux(p)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("%s: audio cannot be copied (%s); output will have no audio", path, exc)
                return None
        return buf.getvalue(), "; ".join(d for _, _, d in descriptions)
    finally:
        container.close()


class AudioMuxer:
    """Copies the packets of an extract_audio blob into `out` (an open output container).
    Call `add_streams()` before the first video packet is muxed, `mux_until(seconds)` after
    each video packet, and `finish()` before closing. Streams the output format cannot hold are
    skipped with a warning."""

    def __init__(self, out, audio: tuple[bytes, str]):
        self.out = out
        self.blob = av.open(io.BytesIO(audio[0]), "r")
        self.map = {}
        for s in self.blob.streams.audio:
            if not self._compatible(s):
                log.warning("audio (%s) cannot go into a %s file; writing video only", s.codec_context.name, out.format.name)
                continue
            o = out.add_stream_from_template(s)
            if s.codec_context.sample_rate:
                o.time_base = Fraction(1, s.codec_context.sample_rate)
            self.map[s.index] = o
        self.next_pts: dict[int, int] = {}  # expected pts (samples) of each stream's next packet
        self.packets = self.blob.demux(list(self.blob.streams.audio)) if self.map else iter(())
        self.pending = None

    def _compatible(self, s) -> bool:
        """Try the stream in an empty in-memory container of the same format first: a muxer
        that rejects the codec fails at the header, which would otherwise lose the video."""
        try:
            with av.open(io.BytesIO(), "w", format=self.out.format.name) as probe:
                probe.add_stream_from_template(s)
                probe.start_encoding()
            return True
        except (av.error.FFmpegError, ValueError):
            return False

    def mux_until(self, seconds: float | None) -> None:
        """Mux audio packets that start before `seconds` (all of them for None)."""
        while True:
            if self.pending is None:
                p = next(self.packets, None)
                if p is None:
                    return
                if p.dts is None or not p.size or p.stream.index not in self.map:
                    continue
                self.pending = p
            p = self.pending
            if seconds is not None and p.pts is not None and float(p.pts * p.time_base) > seconds:
                return
            self._retime(p)
            p.stream = self.map[p.stream.index]
            self.out.mux(p)
            self.pending = None

    def _retime(self, p) -> None:
        """Millisecond timestamps -> sample units, snapped to the frame grid within 1 ms."""
        cc = p.stream.codec_context
        rate, frame = cc.sample_rate, cc.frame_size
        if not rate or p.pts is None:
            return
        t = Fraction(p.pts) * p.time_base * rate
        tolerance = Fraction(rate, 1000)
        expected = self.next_pts.get(p.stream.index)
        if frame and expected is None and abs(t - frame * round(t / frame)) <= tolerance:
            expected = frame * round(t / frame)  # first packet: on the grid (AAC priming: -1024)
        pts = expected if expected is not None and frame and abs(t - expected) <= tolerance else round(t)
        duration = frame or (round(Fraction(p.duration) * p.time_base * rate) if p.duration else 0)
        p.time_base = Fraction(1, rate)
        p.pts = p.dts = pts
        p.duration = duration
        self.next_pts[p.stream.index] = pts + frame if frame else None

    def finish(self) -> None:
        self.mux_until(None)
        self.blob.close()

    def close(self) -> None:
        self.blob.close()


def check_audio_blob(audio) -> None:
    """Raise InputError when `audio` is not what extract_audio returns."""
    if audio is None:
        return
    if not (isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[0], (bytes, bytearray))):
        raise InputError("audio must be (bytes, description) as returned by extract_audio")
    # Demux it all up front (it is in memory already): data that opens but breaks later
    # would otherwise fail the video's output half-way.
    try:
        with av.open(io.BytesIO(audio[0]), "r") as blob:
            streams = list(blob.streams.audio)
            if not streams:
                raise InputError("the audio blob holds no audio stream")
            for _ in blob.demux(streams):
                pass
    except (av.error.FFmpegError, ValueError, TypeError, IndexError, OverflowError, UnicodeDecodeError):
        raise InputError("the audio blob is not a readable container") from None
