"""benchmarks/hold_rules.py: a rule that holds a noisy still clip's unsure bits codes fewer
bytes than no hold at every plane count, and says how many bits it changed."""

from __future__ import annotations

import numpy as np
import torch

from scripts import load_benchmark


def test_holding_a_noisy_still_clip_saves_bytes(tiny_model_json):
    from vtoken.entropy.coder import coder_for
    from vtoken.metrics.lpips import LPIPS
    from vtoken.models import load_model

    hr = load_benchmark("hold_rules")
    model = load_model(str(tiny_model_json))
    rng = np.random.default_rng(0)
    still = rng.integers(40, 216, (1, 32, 48, 3))
    frames = np.clip(still + rng.normal(0, 12, (9, 32, 48, 3)), 0, 255).astype(np.uint8)
    v = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        z = model.encode(v)[0].numpy()
    coder, lpips = coder_for(model), LPIPS().eval()
    none = hr.curve(model, coder, lpips, frames, z, 0.0, 0.0, [2, 6])
    held = hr.curve(model, coder, lpips, frames, z, 0.5, 2.0, [2, 6])
    assert [p["planes"] for p in held] == [2, 6] and all(p["held"] == 0 for p in none)
    assert all(h["held"] > 0 and h["bpp"] < n["bpp"] for h, n in zip(held, none))
    assert all(0 <= p["lpips"] <= 1 for p in none + held)


def test_bd_rate_drops_a_flat_top_of_the_curve():
    """A no-hold curve that stops improving at its top gets its BD-rate over the points before."""
    hr = load_benchmark("hold_rules")
    base = [{"bpp": b, "lpips": q} for b, q in ((1, 0.5), (2, 0.4), (4, 0.3), (8, 0.25), (16, 0.25))]
    cheaper = [{"bpp": p["bpp"] * 0.9, "lpips": p["lpips"]} for p in base]
    value, used, why = hr.bd_rate_prefix(base, cheaper)
    assert used == 4 and why is None and abs(value + 10) < 0.5
    value, used, why = hr.bd_rate_prefix(base[:2] + base[1:2] * 3, cheaper)
    assert value is None and used == 0 and "monotone" in why
