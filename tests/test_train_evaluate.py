"""vtoken train evaluate: per plane count and per frame phase inside a latent frame."""

from __future__ import annotations

import numpy as np
import pytest

from tests.clips import make_clip
from vtoken.metrics import build_lpips_weights as blw
from vtoken.train.evaluate import evaluate_model, frame_phases

torch = pytest.importorskip("torch")
needs_weights = pytest.mark.skipif(blw.existing_weights() is None, reason="LPIPS weights not built: run `make install`")


def test_frame_phases_follow_the_causal_latent_grouping():
    assert frame_phases(9, 4) == ["key", "1", "2", "3", "4", "1", "2", "3", "4"]
    assert frame_phases(5, 2) == ["key", "1", "2", "1", "2"]
    assert frame_phases(1, 4) == ["key"]


class _SmearingModel:
    """Decodes to the source itself, except that the first frame of every latent frame
    repeats the frame before it: the defect the phase table exists to show."""

    bits, temporal_factor, identity, has_plane_heads = 4, 4, None, False

    def encode_bits(self, video):
        self.video = video
        t = video.shape[2]
        return torch.zeros(1, self.bits, 1 + (t - 1) // 4, 2, 2)

    def decode_bits(self, bits, planes):
        out = self.video.clone()
        for i in range(1, out.shape[2], 4):
            out[:, :, i] = self.video[:, :, i - 1]
        return out


@needs_weights
def test_by_phase_finds_the_smeared_phase_and_averages_to_the_clip(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=9, size=(64, 64))
    res = evaluate_model(None, clip, [4], frames=9, size=(64, 64), model=_SmearingModel())
    row = res["clips"]["c.mp4"]["4"]
    ph = row["by_phase"]
    assert [ph[p]["frames"] for p in ("key", "1", "2", "3", "4")] == [1, 2, 2, 2, 2]
    # Phases 2-4 and the key are the source itself; phase 1 is the frame before.
    assert ph["1"]["lpips"] > 0.01 and all(ph[p]["lpips"] < 1e-3 for p in ("key", "2", "3", "4"))
    assert ph["1"]["psnr"] < min(ph[p]["psnr"] for p in ("key", "2", "3", "4"))
    weighted = sum(v["lpips"] * v["frames"] for v in ph.values()) / 9
    assert weighted == pytest.approx(row["lpips"], abs=1e-3)
    assert res["mean"]["4"]["by_phase"]["1"]["lpips"] == pytest.approx(ph["1"]["lpips"], abs=1e-4)
