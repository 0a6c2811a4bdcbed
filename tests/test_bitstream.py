"""The .mvt container: round trips, index vs scan, truncation, CRC damage, hostile headers."""

import hashlib
import io
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction

import pytest

from vtoken.bitstream import (
    Chunk,
    Limits,
    MvtReader,
    MvtWriter,
    StreamHeader,
    open_mvt,
    read_info,
    truncate_planes,
)
from vtoken.bitstream.records import CHUNK_FIXED, FOOTER, HEADER_PREFIX, RECORD_HEAD
from vtoken.errors import CorruptChunkError, InputError, StreamError, UnsupportedVersionError

SHA = hashlib.sha256(b"weights").digest()


def make_header(**kw):
    base = dict(model_name="tiny-vidéo-模型", model_sha256=SHA, width=250, height=142,
                fps_num=30000, fps_den=1001, frame_count=40, bits=18, key_interval=2,
                color_primaries=1, color_transfer=1, color_matrix=1, color_range=1,
                extra={"encoder": {"quality": 7}, "source": "clip.mp4"})
    base.update(kw)
    return StreamHeader(**base)


def seg(i, k):
    """Deterministic, distinct segment bytes for chunk i, plane k."""
    return bytes((i * 31 + k * 7 + j) % 256 for j in range(5 + 3 * k + i))


PLANES = [4, 0, 1, 6]  # stored planes per chunk: 0- and 1-plane chunks included
FRAMES = [17, 17, 17, 5]


def make_stream(audio=True, planes=PLANES, frames=FRAMES, close=True):
    buf = io.BytesIO()
    w = MvtWriter(buf, make_header(frame_count=sum(frames)))
    if audio:
        w.write_audio(b"\x00\x01AUDIO" * 20, "aac 48000 Hz stereo")
    first = 0
    for i, (p, n) in enumerate(zip(planes, frames)):
        w.write_chunk(Chunk(i, first, n, i % 2 == 0, (5, 18, 32), 18,
                            [seg(i, k) for k in range(p)]))
        first += n
    if close:
        w.close()
    return buf.getvalue()


def reader(data, **kw):
    return MvtReader(io.BytesIO(data), **kw)


def segment_offsets(data, i):
    """(start, end) of every stored segment of chunk i, from the index."""
    r = reader(data)
    e = r.entries[i]
    pos = e.offset + RECORD_HEAD.size + CHUNK_FIXED.size + 12 * e.planes_stored + 4
    out = []
    for k in range(e.planes_stored):
        n = len(seg(i, k))
        out.append((pos, pos + n))
        pos += n
    return out


def test_header_and_chunks_round_trip():
    data = make_stream()
    r = reader(data)
    assert r.header == make_header(frame_count=56)
    assert r.header.fps == Fraction(30000, 1001)
    assert r.header.model_name == "tiny-vidéo-模型"
    assert r.index_used and not r.truncated and r.warnings == []
    for i, p in enumerate(PLANES):
        c = r.read_chunk(i)
        assert c.segments == [seg(i, k) for k in range(p)]
        assert c.symbol_counts == [5 * 18 * 32] * p
        assert (c.key, c.frame_count, c.latent_shape, c.planes_coded) == (i % 2 == 0,
                                                                          FRAMES[i],
                                                                          (5, 18, 32), 18)
    assert r.audio() == (b"\x00\x01AUDIO" * 20, "aac 48000 Hz stereo")
    assert r.frame_count == 56


def test_header_takes_sha256_as_hex():
    assert make_header(model_sha256=SHA.hex()).model_sha256 == SHA


def test_layout_is_pinned():
    # Any change of the byte layout must be deliberate: update SPEC.md and this digest.
    digest = hashlib.sha256(make_stream()).hexdigest()
    assert digest == PINNED_DIGEST, digest


def test_spec_tables_by_hand():
    # Follow SPEC.md's tables with plain struct calls, independently of the reader.
    data = make_stream()
    assert data[:8] == b"\x8aMVT\r\n\x1a\n"
    major, minor, blen = struct.unpack_from("<HHI", data, 8)
    assert (major, minor) == (1, 0)
    assert struct.unpack_from("<I", data, 16 + blen)[0] == zlib.crc32(data[:16 + blen])
    body = data[16:16 + blen]
    n = struct.unpack_from("<H", body)[0]
    assert body[2:2 + n].decode() == "tiny-vidéo-模型" and body[2 + n:34 + n] == SHA
    w, h, fn, fd = struct.unpack_from("<IIII", body, 34 + n)
    assert (w, h, fn, fd) == (250, 142, 30000, 1001)
    assert body[58 + n:62 + n] == bytes([1, 1, 1, 1])  # BT.709 code points, limited range
    assert struct.unpack_from("<BBB", body, 62 + n) == (18, 8, 4)
    assert struct.unpack_from("<HIHI", body, 66 + n)[0] == 17
    e = struct.unpack_from("<I", body, 74 + n)[0]
    assert body[78 + n:78 + n + e] == b'{"encoder":{"quality":7},"source":"clip.mp4"}'
    # Footer -> index -> first chunk record.
    index_off, count, crc, magic = struct.unpack_from("<QII8s", data, len(data) - 24)
    assert magic == b"\x8aMVTIDX\n" and count == 4
    assert crc == zlib.crc32(data[-24:-12])
    assert data[index_off:index_off + 5] == b"\x8dMVR\x03"
    chunk0 = struct.unpack_from("<Q", data, index_off + 20 + 24)[0]
    sync, rtype, length = struct.unpack_from("<4sB3xQ", data, chunk0)
    assert (sync, rtype) == (b"\x8dMVR", 1)
    idx, first, frames, flags, coded, s = struct.unpack_from("<IQIBBB", data, chunk0 + 20)
    assert (idx, first, frames, flags, coded, s) == (0, 0, 17, 1, 18, 4)
    assert struct.unpack_from("<HHH", data, chunk0 + 40) == (5, 18, 32)
    seg_len, symbols, seg_crc = struct.unpack_from("<III", data, chunk0 + 46)
    start = chunk0 + 20 + 30 + 12 * s
    assert (seg_len, symbols) == (len(seg(0, 0)), 5 * 18 * 32)
    assert data[start:start + seg_len] == seg(0, 0) and seg_crc == zlib.crc32(seg(0, 0))
    assert length == 30 + 12 * s + sum(len(seg(0, k)) for k in range(s))


PINNED_DIGEST = "b54b44e36f84fcc0afe120019944cbd756c56732d0b56b14d8ca9a08423c216a"


def test_no_audio_and_empty_stream():
    r = reader(make_stream(audio=False, planes=[], frames=[]))
    assert r.audio() is None and r.entries == [] and r.frame_count == 0


def test_index_and_scan_give_same_entries():
    data = make_stream()
    with_index = reader(data)
    cut = reader(data[:-FOOTER.size])  # no footer: found by scanning
    assert with_index.index_used and not cut.index_used and cut.truncated
    assert cut.entries == with_index.entries
    assert cut.audio() == with_index.audio()
    # A damaged footer is not a cut: scan, say why, same answer.
    broken = bytearray(data)
    broken[-FOOTER.size] ^= 0xFF
    r = reader(bytes(broken))
    assert r.entries == with_index.entries and not r.truncated
    assert "index damaged" in r.warnings[0]


def test_cut_at_every_plane_boundary_of_last_chunk():
    data = make_stream(audio=False)
    bounds = segment_offsets(data, 3)
    cuts = [bounds[0][0]] + [end for _, end in bounds]
    for k, cut in enumerate(cuts):
        r = reader(data[:cut])
        assert r.truncated and r.warnings == [], (k, r.warnings)
        assert len(r.entries) == 4 and r.entries[3].planes_stored == k
        assert r.read_chunk(3).segments == [seg(3, j) for j in range(k)]
        assert r.read_chunk(0).segments == [seg(0, j) for j in range(4)]


def test_cut_mid_segment_keeps_complete_planes_with_warning():
    data = make_stream(audio=False)
    start, end = segment_offsets(data, 3)[2]
    r = reader(data[:start + 2])
    assert r.entries[3].planes_stored == 2
    assert r.read_chunk(3).segments == [seg(3, 0), seg(3, 1)]
    assert r.warnings == ["file ends inside chunk 3: 2 of 6 planes kept"]


def test_cut_inside_chunk_header_drops_chunk():
    data = make_stream(audio=False)
    r = reader(data[:reader(data).entries[3].offset + RECORD_HEAD.size + 5])
    assert len(r.entries) == 3 and "header of chunk 3" in r.warnings[0]


def test_segment_crc_damage_names_chunk_and_tolerant_keeps_leading_planes():
    data = bytearray(make_stream())
    start, _ = segment_offsets(bytes(data), 0)[2]
    data[start] ^= 0x01
    with pytest.raises(CorruptChunkError, match="chunk 0: plane 2") as e:
        reader(bytes(data)).read_chunk(0)
    assert e.value.chunk == 0 and e.value.exit_code == 4
    r = reader(bytes(data), tolerant=True)
    assert r.read_chunk(0).segments == [seg(0, 0), seg(0, 1)]
    assert r.warnings == ["chunk 0: plane 2 segment CRC mismatch: 2 of 4 planes kept"]
    assert r.read_chunk(1).segments == []  # other chunks unaffected


@pytest.mark.parametrize("use_index", [True, False])
def test_chunk_header_damage_names_chunk(use_index):
    data = bytearray(make_stream())
    off = reader(bytes(data)).entries[2].offset
    data[off + RECORD_HEAD.size + 4] ^= 0x10  # first_frame byte, under the chunk-header CRC
    if not use_index:
        data = data[:-FOOTER.size]
    r = reader(bytes(data), tolerant=True)
    assert len(r.entries) == 4
    with pytest.raises(CorruptChunkError, match="chunk 2") as e:
        r.read_chunk(2)
    assert e.value.chunk == 2
    assert r.read_chunk(3).segments == [seg(3, k) for k in range(6)]


def test_inserted_garbage_is_skipped_by_resync():
    data = make_stream(audio=False)
    off = reader(data).entries[2].offset
    damaged = data[:off] + b"\x00garbage!" * 3 + data[off:]
    r = reader(damaged)
    assert not r.index_used  # the footer's offset no longer points at the index
    assert [e.index for e in r.entries] == [0, 1, 2, 3]
    assert "index damaged" in r.warnings[0]
    assert r.warnings[1] == f"27 damaged bytes at offset {off} skipped"
    assert r.read_chunk(3).segments == [seg(3, k) for k in range(6)]


def test_lost_record_head_gives_damaged_stand_in():
    data = bytearray(make_stream(audio=False)[:-FOOTER.size])
    off = reader(bytes(data)).entries[1].offset
    data[off] ^= 0xFF  # sync tag of chunk 1: its record can no longer be framed
    r = reader(bytes(data))
    assert [(e.index, e.damaged) for e in r.entries] == [(0, False), (1, True), (2, False),
                                                         (3, False)]
    assert r.entries[2].first_frame == 34
    with pytest.raises(CorruptChunkError) as e:
        r.read_chunk(1)
    assert e.value.chunk == 1
    assert r.key_chunk_before(1) == 0


def test_wrong_magic():
    with pytest.raises(StreamError, match="not a .mvt file"):
        reader(b"RIFF" + bytes(100))
    with pytest.raises(StreamError, match="not a .mvt file"):
        reader(b"")


def rewrite_header(data, major=None, body=None):
    """Re-pack the header with a new version or body and a valid CRC."""
    magic, ma, mi, n = HEADER_PREFIX.unpack_from(data)
    old_body = data[HEADER_PREFIX.size:HEADER_PREFIX.size + n]
    rest = data[HEADER_PREFIX.size + n + 4:]
    body = old_body if body is None else body
    head = HEADER_PREFIX.pack(magic, ma if major is None else major, mi, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head)) + rest


def test_newer_major_version():
    data = rewrite_header(make_stream(), major=2)
    with pytest.raises(UnsupportedVersionError, match="version 2.0, newer.*upgrade vtoken"):
        reader(data)


def test_header_crc_damage():
    data = bytearray(make_stream())
    data[HEADER_PREFIX.size + 3] ^= 1
    with pytest.raises(StreamError, match="header CRC"):
        reader(bytes(data))


def _body(width=64, height=64, name_len=None, extra_len=None, fpc=17):
    name = b"m"
    fixed = struct.pack("<IIIIQBBBBBBBxHIH", width, height, 25, 1, 10, 2, 2, 2, 0, 18, 8, 4,
                        fpc, 1, 1)
    return (struct.pack("<H", len(name) if name_len is None else name_len) + name + SHA +
            fixed + struct.pack("<I", 2 if extra_len is None else extra_len) + b"{}")


@pytest.mark.parametrize("body, match", [
    (_body(width=1 << 31), "frame size"),
    (_body(height=0), "frame size"),
    (_body(name_len=60000), "model name"),
    (_body(extra_len=1 << 31), "extra metadata"),
    (_body(fpc=18), "frames per chunk"),
    (b"\x01", "does not parse"),
])
def test_hostile_headers_fail_fast(body, match):
    data = rewrite_header(make_stream(), body=body)
    t = time.perf_counter()
    with pytest.raises(StreamError, match=match):
        reader(data)
    assert time.perf_counter() - t < 0.1


def test_hostile_header_length_in_tiny_file():
    data = HEADER_PREFIX.pack(b"\x8aMVT\r\n\x1a\n", 1, 0, 0xFFFFFFFF) + bytes(80)
    with pytest.raises(StreamError, match="does not fit"):
        reader(data)


def test_hostile_chunk_and_index_counts_fail_fast():
    from vtoken.bitstream.records import (SEGMENT_DESC, U32, crc32, pack_footer,
                                          pack_record)
    header = make_stream(audio=False, planes=[], frames=[])
    header = header[:len(header) - FOOTER.size - RECORD_HEAD.size - 28]
    # A chunk claiming huge latents and 255 planes of 2**32-1 bytes, with valid CRCs.
    head = CHUNK_FIXED.pack(0, 0, 17, 1, 255, 255, 65535, 65535, 65535)
    head += b"".join(SEGMENT_DESC.pack(0xFFFFFFFF, 0xFFFFFFFF, 0) for _ in range(255))
    chunk = pack_record(1, head + U32.pack(crc32(head)))
    # And a footer whose "index" claims 10**9 chunks.
    data = header + chunk + pack_footer(len(header), 10 ** 9)
    t = time.perf_counter()
    r = reader(data, tolerant=True)
    assert r.entries[0].damaged and "damaged" in " ".join(r.warnings)
    with pytest.raises(CorruptChunkError):
        r.read_chunk(0)
    assert time.perf_counter() - t < 0.1


def test_truncate_planes_is_smaller_and_parses():
    data = make_stream()
    out = io.BytesIO()
    stats = truncate_planes(io.BytesIO(data), out, 2)
    small = out.getvalue()
    assert stats["bytes_out"] == len(small) < len(data) == stats["bytes_in"]
    r = reader(small)
    assert r.index_used and r.warnings == []
    assert [e.planes_stored for e in r.entries] == [min(p, 2) for p in PLANES]
    for i, p in enumerate(PLANES):
        assert r.read_chunk(i).segments == [seg(i, k) for k in range(min(p, 2))]
    assert r.audio() == reader(data).audio()
    assert r.header == reader(data).header


def test_seeking():
    r = reader(make_stream())
    assert [r.chunk_for_frame(f) for f in (0, 16, 17, 50, 51, 55)] == [0, 0, 1, 2, 3, 3]
    assert [r.key_chunk_before(i) for i in range(4)] == [0, 0, 2, 2]
    with pytest.raises(Exception, match="outside the stream"):
        r.chunk_for_frame(56)


def test_writer_checks():
    with pytest.raises(InputError, match="frame size"):
        MvtWriter(io.BytesIO(), make_header(width=20000))
    w = MvtWriter(io.BytesIO(), make_header())
    with pytest.raises(ValueError, match="key"):
        w.write_chunk(Chunk(0, 0, 17, False, (5, 2, 2), 18, []))
    with pytest.raises(ValueError, match="starts at frame"):
        w.write_chunk(Chunk(0, 3, 17, True, (5, 2, 2), 18, []))
    with pytest.raises(ValueError, match="symbol counts"):
        w.write_chunk(Chunk(0, 0, 17, True, (5, 2, 2), 18, [b"x"], [7]))


def test_writer_streams_into_a_write_only_object():
    class Sink:
        def __init__(self):
            self.parts = []

        def write(self, b):
            self.parts.append(bytes(b))

    sink = Sink()
    with MvtWriter(sink, make_header()) as w:
        w.write_chunk(Chunk(0, 0, 17, True, (5, 18, 32), 18, [b"abc"]))
    assert reader(b"".join(sink.parts)).read_chunk(0).segments == [b"abc"]


def test_open_mvt_and_read_info(tmp_path):
    path = tmp_path / "a.mvt"
    path.write_bytes(make_stream())
    with open_mvt(path) as r:
        assert len(r.entries) == 4
    info = read_info(path, verify=True)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (250, 142, 56,
                                                                           "30000/1001")
    assert (info["planes_min"], info["planes_max"], info["chunks"], info["key_chunks"]) == \
        (0, 6, 4, 2)
    assert info["bpp"] == pytest.approx(path.stat().st_size * 8 / (56 * 250 * 142))
    assert info["model"] == {"name": "tiny-vidéo-模型", "sha256": SHA.hex()}
    assert info["audio"] and info["warnings"] == []
    with pytest.raises(InputError, match="cannot open"):
        open_mvt(tmp_path / "missing.mvt")


def test_imports_without_torch_or_numpy():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
            "import io, vtoken.bitstream as b\n"
            "h = b.StreamHeader('m', bytes(32), 16, 16, 25, 1)\n"
            "f = io.BytesIO(); w = b.MvtWriter(f, h)\n"
            "w.write_chunk(b.Chunk(0, 0, 1, True, (1, 2, 2), 18, [b'x'])); w.close()\n"
            "f.seek(0); print(b.MvtReader(f).read_chunk(0).segments)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[b'x']"


def test_default_limits_bound_allocation():
    lim = Limits()
    assert lim.max_planes == 128 and lim.max_width == 16384
    from vtoken.models.config import MAX_BITS
    assert MAX_BITS == lim.max_planes  # a model may have as many planes as a reader accepts
    # One plane of the largest chunk stays below 128 Mi symbols.
    assert lim.max_symbols <= 1 << 27


def test_hostile_file_allocates_little():
    import tracemalloc

    from vtoken.bitstream.records import U32, crc32, pack_record
    header = make_stream(audio=False, planes=[], frames=[])
    header = header[:len(header) - FOOTER.size - RECORD_HEAD.size - 28]
    # Record heads with valid CRCs claiming 2**64-1 payload bytes, audio and chunk alike.
    audio = pack_record(2, b"")[:8] + struct.pack("<Q", (1 << 64) - 1)
    audio += U32.pack(crc32(audio))
    tracemalloc.start()
    try:
        r = reader(header + audio + bytes(60), tolerant=True)
        r.audio()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert r.truncated and "audio" in r.warnings[0]


def test_read_info_on_cut_file(tmp_path):
    data = make_stream(audio=False)
    start, _ = segment_offsets(data, 3)[1]
    path = tmp_path / "cut.mvt"
    path.write_bytes(data[:start + 1])
    info = read_info(path)
    assert info["truncated"] and info["chunks"] == 4 and info["planes_min"] == 0
    assert info["warnings"] == ["file ends inside chunk 3: 1 of 6 planes kept"]
