"""benchmarks/temporal_bits.py: a still clip's bits do not flip and its predicted latent
frames cost the coder less than its key frame; a clip that changes every frame flips."""

from __future__ import annotations

import numpy as np

from scripts import load_benchmark


def test_still_clip_is_steady_and_cheap_where_noise_flips(tiny_model_json):
    from vtoken.models import load_model

    tb = load_benchmark("temporal_bits")
    model = load_model(str(tiny_model_json))
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 256, (1, 32, 48, 3), dtype=np.uint8), 9, axis=0)
    out = tb.measure(model, still)
    assert out["latent_shape"][1] == 3
    assert out["flips"] == 0 and out["flipped_abs_z_below"] is None
    assert out["coder_pred_over_key"] < 0.5
    noise = rng.integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)
    moving = tb.measure(model, noise)
    assert moving["flips"] > 0.05 and 0 <= moving["flipped_abs_z_below"]["0.5"] <= 1
    assert moving["coder_pred_over_key"] > out["coder_pred_over_key"]
    assert set(moving["estimate_over_coder"]) == {"co-located", "motion"}
