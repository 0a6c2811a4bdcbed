"""A golden .mvt: a small fixed model (numpy-seeded weights, so torch's init code does not
matter), a fixed generated clip, and the sha256 of the file, of its entropy-decoded bits and
of the decoded frames. Any change to the container, the entropy coder, the codec's chunking,
the encoder's decisions (its hysteresis, vtoken.codec.hold) or the model's arithmetic fails
here loudly.

The pinned values live in tests/golden/tiny-stream.json. Regenerate them only on purpose
(after a deliberate format or coder change, bumping the version that change needs):

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
        "frames_sha256": _sha(frames.tobytes()),
    }
    if REGENERATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
        pytest.skip("golden values regenerated")
    want = json.loads(GOLDEN.read_text())
    assert got == want, "the .mvt format, the coder or the model arithmetic changed; see this module's doc"
