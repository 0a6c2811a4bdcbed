"""benchmarks/metric_crosscheck.py: BD-rates of two vtoken series on every metric."""

from __future__ import annotations

import csv

from scripts import load_benchmark

FIELDS = ["clip", "codec", "config", "bpp", "lpips", "ms_ssim", "psnr_rgb", "psnr_y"]


def _write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)


def _curve(clip, config, scale, psnr_y=None):
    rates = [0.01, 0.02, 0.04, 0.08]
    return [dict(clip=clip, codec="vtoken", config=config, bpp=r * scale, lpips=0.5 - 0.1 * i, ms_ssim=0.8 + 0.04 * i,
                 psnr_rgb=20 + 2 * i, psnr_y=(psnr_y or [21 + 2 * j for j in range(4)])[i])
            for i, r in enumerate(rates)]


def test_half_the_bits_on_every_metric_reads_minus_50_and_a_bent_curve_reads_a_dash(tmp_path, capsys):
    script = load_benchmark("metric_crosscheck")
    anchor, test = tmp_path / "a.csv", tmp_path / "t.csv"
    hevc = [dict(clip="c", codec="hevc", config="default", bpp=0.001, lpips=0.9, ms_ssim=0.1, psnr_rgb=5, psnr_y=5)]
    no_ms_ssim = [dict(r, ms_ssim="") for r in _curve("e", "default", 1.0)]  # a run without MS-SSIM
    _write(anchor, _curve("c", "default", 1.0) + _curve("d", "default", 1.0) + hevc + no_ms_ssim)
    # The test's "auto" series: half the rate on c; on d its PSNR-Y dips, so that BD-rate is undefined.
    _write(test, _curve("c", "auto", 0.5) + _curve("d", "auto", 1.0, psnr_y=[21, 24, 23, 27])
           + _curve("c", "default", 4.0) + _curve("e", "auto", 2.0))
    assert script.main([str(anchor), str(test), "--test-config", "auto", "--out", str(tmp_path / "o.md")]) == 0
    text = (tmp_path / "o.md").read_text()
    assert "| c | -50.0 % | -50.0 % | -50.0 % | -50.0 % |" in text
    assert "| d | +0.0 % | +0.0 % | +0.0 % | - |" in text
    assert "| e | +100.0 % | - | +100.0 % | +100.0 % |" in text
    assert text in capsys.readouterr().out
