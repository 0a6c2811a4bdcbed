"""benchmarks/stream_hashes.py: the fingerprint used to compare GPU-encoded streams across
machines hashes exactly the bits the decoder gets."""

from __future__ import annotations

import hashlib

import numpy as np

import vtoken

from clips import make_clip
from scripts import load_benchmark


def _load():
    return load_benchmark("stream_hashes")


def test_fingerprint_hashes_the_decoded_bits(tmp_path, tiny_model_json):
    from vtoken.bitstream import open_mvt
    from vtoken.entropy import coder_for
    from vtoken.models import load_model

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=13, size=(48, 40))
    mvt = tmp_path / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=5, key_interval=2, device="cpu")
    fp = _load().fingerprint(mvt)

    model = load_model(tiny_model_json)
    coder, want = coder_for(model), hashlib.sha256()
    with open_mvt(mvt) as reader:
        for e in reader.entries:
            if e.key:
                coder.reset()
            c = reader.read_chunk(e.index)
            want.update(np.ascontiguousarray(coder.decode(list(c.segments), tuple(c.latent_shape)), np.uint8).tobytes())
    assert fp["bits_sha256"] == want.hexdigest()
    assert fp["sha256"] == hashlib.sha256(mvt.read_bytes()).hexdigest()
    assert (fp["chunks"], fp["frames"], fp["size"]) == (3, 13, "48x40")

    fewer = tmp_path / "b.mvt"
    vtoken.encode(src, fewer, model=tiny_model_json, chunk_frames=5, key_interval=2, device="cpu", planes=3)
    assert _load().fingerprint(fewer)["bits_sha256"] != fp["bits_sha256"]
