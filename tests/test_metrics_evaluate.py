"""evaluate(): all metrics of a sequence, streamed in batches."""

import numpy as np
import pytest

from vtoken.metrics import METRICS, evaluate, ms_ssim, psnr_rgb, psnr_y
from vtoken.metrics import build_lpips_weights as blw


def clip(t=5, h=176, w=184, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2)
    drift = np.arange(t)[:, None, None, None] * 3
    return np.clip(base + drift, 0, 255).astype(np.uint8)


def distort(a, seed=1):
    n = np.random.default_rng(seed).integers(-6, 7, a.shape)
    return np.clip(a.astype(int) + n, 0, 255).astype(np.uint8)


def test_streamed_chunks_equal_whole_arrays():
    ref = clip()
    dist = distort(ref)
    whole = evaluate(ref, dist, batch=8, lpips=False)
    streamed = evaluate((ref[i:i + 2] for i in range(0, 5, 2)),
                        (dist[i:i + 3] for i in range(0, 5, 3)), batch=2, lpips=False)
    assert whole["frames"] == streamed["frames"] == 5
    for m in ("psnr_rgb", "psnr_y", "ms_ssim"):
        assert np.allclose(whole["per_frame"][m], streamed["per_frame"][m], rtol=0, atol=1e-12)
    assert np.allclose(whole["per_frame"]["psnr_rgb"], psnr_rgb(ref, dist))
    assert np.allclose(whole["per_frame"]["psnr_y"], psnr_y(ref, dist))
    assert np.allclose(whole["per_frame"]["ms_ssim"], ms_ssim(ref, dist))
    assert whole["mean"]["psnr_rgb"] == pytest.approx(psnr_rgb(ref, dist).mean())
    assert whole["per_frame"]["lpips"] is None and "lpips" in whole["notes"]
    assert set(whole["per_frame"]) == set(METRICS)


def test_small_frames_skip_ms_ssim_with_a_note():
    ref = clip(t=2, h=64, w=64)
    res = evaluate(ref, distort(ref), lpips=False)
    assert res["per_frame"]["ms_ssim"] is None and res["mean"]["ms_ssim"] is None
    assert "176" in res["notes"]["ms_ssim"]
    assert res["mean"]["psnr_rgb"] > 30


def test_length_mismatch_raises():
    ref = clip(t=3, h=32, w=32)
    with pytest.raises(ValueError, match="differ in length"):
        evaluate(ref, ref[:2], lpips=False)
    with pytest.raises(ValueError, match="no frames"):
        evaluate(ref[:0], ref[:0], lpips=False)


@pytest.mark.skipif(blw.existing_weights() is None,
                    reason="LPIPS weights not built: run `make install`")
def test_lpips_included():
    from vtoken.metrics import lpips_frames

    ref = clip(t=3, h=64, w=64)
    dist = distort(ref)
    res = evaluate(ref, dist, batch=2)
    assert np.allclose(res["per_frame"]["lpips"], lpips_frames(ref, dist), atol=1e-7)
    assert 0 < res["mean"]["lpips"] < 1
