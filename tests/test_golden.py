"""A golden .mvt: a small fixed model (numpy-seeded weights, so torch's init code does not
matter), a fixed generated clip, the sha256 of the file and of its entropy-decoded bits, and
the decoded frames. Any change to the container, the entropy coder, the codec's chunking,
the encoder's decisions (its hysteresis, vtoken.codec.hold) or the model's arithmetic fails
here loudly.

The file and its bits are pinned exactly. The decoded frames are float arithmetic, whose
rounding depends on the CPU's vector unit (PyTorch's default, AVX2 and AVX-512 kernels put
one value of these 37,440 one level apart), so they are compared with the stored frames
within one level on at most 0.1 % of the values: far below what a changed layer or weight
moves.

The pinned values live in tests/golden/tiny-stream.json and tiny-stream-frames.npz.
Regenerate them only on purpose (after a deliberate format or coder change, bumping the
version that change needs):

    VTOKEN_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import vtoken
from vtoken.bitstream import open_mvt
from vtoken.codec import Codec
from vtoken.models import Tokenizer, TokenizerConfig, load_model, save_model

from clips import make_clip

GOLDEN = Path(__file__).parent / "golden" / "tiny-stream.json"
GOLDEN_FRAMES = GOLDEN.with_name("tiny-stream-frames.npz")
FRAME_TOLERANCE = 1  # levels of 255
FRAME_DIFFERING_SHARE = 0.001
REGENERATE = os.environ.get("VTOKEN_REGENERATE_GOLDEN") == "1"


def fixed_model(folder: Path):
    """A tiny Tokenizer whose every weight comes from numpy's seeded generator, saved and
    loaded back (so it has an identity)."""
    import torch

    model = Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16), res_blocks=(1, 1, 1, 1))).eval()
    rng = np.random.default_rng(12)
    with torch.no_grad():
        for name, p in sorted(model.state_dict().items()):
            fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else 1
            scale = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 1 / np.sqrt(fan_in)
            p.copy_(torch.from_numpy((rng.standard_normal(p.shape) * scale).astype(np.float32)))
    path = save_model(model, folder, "golden-tiny")
    return load_model(path, cache=False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_golden_stream(tmp_path):
    model = fixed_model(tmp_path)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=13, size=(40, 24), seed=3)
    mvt = tmp_path / "golden.mvt"
    vtoken.encode(src, mvt, model=model, device="cpu", chunk_frames=5, key_interval=2, precision="fp32")
    bits = hashlib.sha256()
    with open_mvt(mvt) as reader:
        for _, b in Codec(model, "cpu").entropy_bits(reader):
            bits.update(b.tobytes())
    frames = np.concatenate(list(vtoken.decode_frames(mvt, model=model, device="cpu", precision="fp32")))
    got = {
        "model_sha256": model.identity.sha256,
        "mvt_bytes": mvt.stat().st_size,
        "mvt_sha256": _sha(mvt.read_bytes()),
        "bits_sha256": bits.hexdigest(),
        "frames_shape": list(frames.shape),
    }
    if REGENERATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
        np.savez_compressed(GOLDEN_FRAMES, frames=frames)
        pytest.skip("golden values regenerated")
    want = json.loads(GOLDEN.read_text())
    assert got == want, "the .mvt format, the coder or the model arithmetic changed; see this module's doc"
    with np.load(GOLDEN_FRAMES) as stored:
        want_frames = stored["frames"]
    diff = np.abs(frames.astype(np.int16) - want_frames.astype(np.int16))
    assert diff.max() <= FRAME_TOLERANCE and (diff > 0).mean() <= FRAME_DIFFERING_SHARE, (
        f"decoded frames moved (largest difference {diff.max()}, {(diff > 0).mean():.4%} of values differ): "
        "the model's arithmetic changed; see this module's doc"
    )
