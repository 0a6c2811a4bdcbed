"""The command line, in-process (CliRunner), on clips made by the tests."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from vtoken.cli import main

from clips import make_clip


@pytest.fixture()
def runner():
    return CliRunner()


def test_version_lists_the_libraries(runner):
    res = runner.invoke(main, ["--version"])
    assert res.exit_code == 0
    for name in ("vtoken", "torch", "av", "constriction"):
        assert name in res.output


def test_encode_info_decode(runner, tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.mp4", frames=7, size=(48, 32))
    mvt, out = tmp_path / "a.mvt", tmp_path / "frames/"
    res = runner.invoke(main, ["encode", str(src), str(mvt), "--model", str(tiny_model_json), "--bits", "4",
                               "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    enc = json.loads(res.stdout)
    assert enc["frames"] == 7 and enc["planes"] == [4]
    res = runner.invoke(main, ["info", str(mvt), "--json"])
    assert res.exit_code == 0
    meta = json.loads(res.stdout)
    assert (meta["width"], meta["height"], meta["frames"]) == (48, 32, 7)
    assert meta["bpp"] == pytest.approx(mvt.stat().st_size * 8 / (7 * 48 * 32))
    assert meta["fps"] in ("25", "25/1", 25, 25.0)
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.joinpath("frames").glob("*.png"))) == 7


def test_refuses_overwrite_without_y(runner, tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    mvt = tmp_path / "a.mvt"
    mvt.write_bytes(b"x")
    res = runner.invoke(main, ["encode", str(src), str(mvt), "--model", str(tiny_model_json), "--device", "cpu"])
    assert res.exit_code == 1
    assert "exists" in res.stderr and "Traceback" not in res.output
    assert mvt.read_bytes() == b"x"
    res = runner.invoke(main, ["encode", str(src), str(mvt), "-y", "--model", str(tiny_model_json), "--device", "cpu"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "content, code",
    [(b"this is not a video", 1), (b"", 1)],
)
def test_bad_input_is_one_line_and_nonzero(runner, tmp_path, content, code, tiny_model_json):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    res = runner.invoke(main, ["encode", str(bad), str(tmp_path / "o.mvt"), "--model", str(tiny_model_json)])
    assert res.exit_code == code
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("vtoken: error:")
    assert not (tmp_path / "o.mvt").exists()


def test_not_an_mvt_file_has_its_own_exit_code(runner, tmp_path):
    bad = tmp_path / "bad.mvt"
    bad.write_bytes(b"\x00" * 100)
    res = runner.invoke(main, ["info", str(bad)])
    assert res.exit_code == 3 and "not a .mvt file" in res.stderr


def test_usage_errors_exit_2(runner, tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    res = runner.invoke(main, ["encode", str(src), str(tmp_path / "o.mvt"), "--quality", "0",
                               "--model", str(tiny_model_json), "--device", "cpu"])
    assert res.exit_code == 2 and "quality" in res.stderr
    for hold in ("-1", "nan", "inf"):
        res = runner.invoke(main, ["encode", str(src), str(tmp_path / "o.mvt"), "--hold", hold,
                                   "--model", str(tiny_model_json), "--device", "cpu"])
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "hold" in res.stderr
    assert not (tmp_path / "o.mvt").exists()
    res = runner.invoke(main, ["encode", str(src)])
    assert res.exit_code == 2


def test_batch_encode_keeps_going_past_a_bad_file(runner, tmp_path, tiny_model_json):
    good = make_clip(tmp_path / "good.y4m", codec="rawvideo", frames=5, size=(32, 32))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    out = tmp_path / "out"
    res = runner.invoke(main, ["encode", str(bad), str(good), "-d", str(out), "--model", str(tiny_model_json),
                               "--device", "cpu", "--json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert [f["input"] for f in report["failures"]] == [str(bad)]
    assert (out / "good.mvt").exists() and not (out / "bad.mvt").exists()
    assert "1 of 2 inputs failed" in res.stderr


def test_batch_outputs_stay_inside_the_named_folder(runner, tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "..clip.y4m", codec="rawvideo", frames=1, size=(32, 32))
    out = tmp_path / "out"
    res = runner.invoke(main, ["encode", str(src), "-d", str(out), "--model", str(tiny_model_json), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    written = [p.resolve() for p in out.iterdir()]
    assert written and all(p.parent == out.resolve() for p in written)


def test_ctrl_c_leaves_no_partial_file(runner, tmp_path, tiny_model_json, monkeypatch):
    import vtoken.codec.codec as codec

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec, "encode_chunks", interrupted)
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    res = runner.invoke(main, ["encode", str(src), str(tmp_path / "o.mvt"), "--model", str(tiny_model_json),
                               "--device", "cpu"])
    assert res.exit_code == 130 and "interrupted" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.y4m"]
