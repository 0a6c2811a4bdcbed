"""benchmarks/refine_steps.py: the search's step ladder coded on a clip, and read as BD-rates."""

from __future__ import annotations

import csv

import pytest

from scripts import load_benchmark

from clips import make_clip


def _write(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)


def test_code_writes_a_row_per_clip_and_plane_count_with_its_search(tmp_path, tiny_model_json):
    from vtoken import defaults

    script = load_benchmark("refine_steps")
    clip = make_clip(tmp_path / "a.mp4", frames=9, size=(64, 48), seed=2)
    out = tmp_path / "s.csv"
    before = defaults.REFINE_LR, defaults.REFINE_LPIPS_STRIDE, defaults.REFINE_METHOD
    with pytest.raises(SystemExit):  # argparse: a stride under 1 is refused
        script.main(["code", f"a={clip}", "--steps", "1", "--lpips-stride", "0", "--csv", str(out)])
    assert script.main(["code", f"a={clip}", "--steps", "1", "--method", "adam", "--lr", "0.2", "--planes", "2,4",
                        "--refine-loss", "l1", "--lpips-stride", "3", "--precision", "bf16",
                        "--model", str(tiny_model_json), "--csv", str(out)]) == 0
    # the probe's settings are not left behind
    assert (defaults.REFINE_LR, defaults.REFINE_LPIPS_STRIDE, defaults.REFINE_METHOD) == before
    rows = list(csv.DictReader(open(out)))
    assert [(r["clip"], r["steps"], r["method"], r["lr"], r["refine_loss"], r["lpips_stride"], r["precision"])
            for r in rows] == [("a", "1", "adam", "0.2", "l1", "-", "bf16")] * 2  # l1 runs no LPIPS: no stride
    assert float(rows[0]["bpp"]) < float(rows[1]["bpp"])  # 2 planes, then 4
    assert all(0 <= float(r["lpips"]) <= 1 and float(r["encode_s"]) > 0 for r in rows)
    assert not out.with_suffix(".mvt").exists()
    # The default method: 1 step is a flip step (no learning rate), of the share it flips.
    assert script.main(["code", f"a={clip}", "--steps", "1", "--planes", "2", "--model", str(tiny_model_json),
                        "--csv", str(out)]) == 0
    (row,) = csv.DictReader(open(out))
    assert (row["method"], row["flip_steps"], row["lr"], float(row["flip_share"])) == (
        "flip", "1", "-", defaults.REFINE_FLIP_FRACTION)


def test_table_reads_a_series_against_the_unsearched_stream_and_x265(tmp_path, capsys):
    script = load_benchmark("refine_steps")
    fields = ["clip", "codec", "config", "bpp", "lpips", "ms_ssim", "psnr_rgb", "psnr_y", "encode_s", "steps", "lr"]
    rates, lpips = [0.01, 0.02, 0.04, 0.08], [0.5, 0.4, 0.3, 0.2]

    def curve(codec, scale, clip="c"):
        return [dict(clip=clip, codec=codec, config="default", bpp=r * scale, lpips=q, ms_ssim=0.9, psnr_rgb=30,
                     psnr_y=31, encode_s=5 + i) for i, (r, q) in enumerate(zip(rates, lpips))]

    bench, series = tmp_path / "results.csv", tmp_path / "s2.csv"
    _write(bench, curve("vtoken", 1.0) + curve("hevc", 0.25) + curve("vtoken", 1.0, "d") + curve("hevc", 0.5, "d"),
           fields)
    # Half the unsearched stream's bits on c, the same on d; x265 needs a quarter / half of them.
    _write(series, [dict(r, steps=2, lr=0.08) for r in curve("vtoken", 0.5) + curve("vtoken", 1.0, "d")], fields)
    assert script.main(["table", str(bench), str(series), "--out", str(tmp_path / "o.md")]) == 0
    text = (tmp_path / "o.md").read_text()
    # a series written before the stride and the precision were settings ran LPIPS on every frame, in fp32
    # and by Adam's steps
    assert ("| s2.csv | 2 | adam | 0.08 | lpips | 1 | fp32 | 5-8 | -50.0 / +0.0 | +100.0 / +100.0 | +0.100 / +0.100 |"
            in text), text
    assert text in capsys.readouterr().out
    strided = tmp_path / "s4.csv"  # a series that says its stride and its precision
    _write(strided, [dict(r, steps=4, lr=0.08, lpips_stride=2, precision="bf16") for r in curve("vtoken", 0.5)],
           fields + ["lpips_stride", "precision"])
    assert script.main(["table", str(bench), str(strided)]) == 0
    assert "| s4.csv | 4 | adam | 0.08 | lpips | 2 | bf16 | 5-8 | -50.0 | +100.0 | +0.100 |" in capsys.readouterr().out
    flips, split = tmp_path / "f2.csv", tmp_path / "f8.csv"  # flips alone, and flips then Adam's steps
    more = ["lpips_stride", "precision", "method", "flip_steps", "flip_share"]
    _write(flips, [dict(r, steps=2, lr="-", lpips_stride=2, precision="bf16", method="flip", flip_steps=2,
                        flip_share=0.02) for r in curve("vtoken", 0.5)], fields + more)
    _write(split, [dict(r, steps=8, lr=0.08, lpips_stride=2, precision="bf16", method="flip", flip_steps=2,
                        flip_share=0.02) for r in curve("vtoken", 0.5)], fields + more)
    assert script.main(["table", str(bench), str(flips), str(split)]) == 0
    out = capsys.readouterr().out
    assert "| f2.csv | 2 | flip | 0.02 | lpips | 2 | bf16 |" in out
    assert "| f8.csv | 8 | 2 flip + 6 adam | 0.02 / 0.08 | lpips | 2 | bf16 |" in out
    other = tmp_path / "other.csv"  # no clip of the bench's: a message, not a traceback
    _write(other, [dict(r, steps=1, lr=0.08) for r in curve("vtoken", 1.0, "z")], fields)
    assert script.main(["table", str(bench), str(other)]) == 1
    assert "no clip in common" in capsys.readouterr().err
