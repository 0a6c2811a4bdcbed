"""Issue 11: an output never destroys what the user did not name as an output, and inputs of
every kind get a clear answer. In-process (CliRunner) on generated clips."""

from __future__ import annotations

import os
import threading

import pytest
from click.testing import CliRunner

from vtoken.cli import main

from clips import make_clip


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def clip(tmp_path):
    return make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))


@pytest.fixture()
def mvt(tmp_path, clip, tiny_model_json):
    import vtoken

    out = tmp_path / "a.mvt"
    vtoken.encode(clip, out, model=tiny_model_json, device="cpu")
    return out


def _one_line_error(res, code: int, words: str) -> None:
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vtoken: error:") and words in lines[0], res.stderr
    assert "Traceback" not in res.output


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _encode(runner, src, dst, model, *extra):
    return runner.invoke(main, ["encode", str(src), str(dst), "--model", str(model), "--device", "cpu", *extra])


def test_y_onto_a_folder_is_refused_and_the_folder_kept(runner, tmp_path, clip, mvt, tiny_model_json):
    folder = tmp_path / "keep"
    (folder / "sub").mkdir(parents=True)
    (folder / "precious.txt").write_bytes(b"mine")
    _one_line_error(_encode(runner, clip, folder, tiny_model_json, "-y"), 1, "is a folder")
    res = runner.invoke(main, ["trim", str(mvt), str(folder), "--planes", "2", "-y"])
    _one_line_error(res, 1, "is a folder")
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(folder / "sub"), "-y", "--device", "cpu"])
    assert res.exit_code == 0, res.output  # a folder is a PNG output: its own frames only
    assert _tree(folder)["precious.txt"] == b"mine"
    assert sorted(os.listdir(folder / "sub")) == [f"{i:06d}.png" for i in range(5)]


@pytest.mark.parametrize("name", [".", "..", "./", "sub/.."])
def test_dot_outputs_are_refused(runner, tmp_path, clip, mvt, tiny_model_json, monkeypatch, name):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "x.txt").write_bytes(b"x")
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    _one_line_error(_encode(runner, clip, name, tiny_model_json, "-y"), 1, "current or parent folder")
    _one_line_error(runner.invoke(main, ["trim", str(mvt), name, "--planes", "1", "-y"]), 1, "folder")
    _one_line_error(runner.invoke(main, ["decode", str(mvt), "-o", name, "-y", "--device", "cpu"]), 1, "folder")
    assert _tree(tmp_path) == before


def test_the_input_is_never_the_output(runner, tmp_path, clip, mvt, tiny_model_json):
    before = clip.read_bytes(), mvt.read_bytes()
    _one_line_error(_encode(runner, clip, clip, tiny_model_json, "-y"), 1, "also an input")
    link = tmp_path / "link.mvt"
    link.symlink_to(clip)
    _one_line_error(_encode(runner, clip, link, tiny_model_json, "-y"), 1, "also an input")
    hard = tmp_path / "hard.mvt"
    os.link(mvt, hard)
    _one_line_error(runner.invoke(main, ["trim", str(mvt), str(hard), "--planes", "1", "-y"]), 1, "also an input")
    _one_line_error(runner.invoke(main, ["trim", str(mvt), str(mvt), "--planes", "1", "-y"]), 1, "also an input")
    assert (clip.read_bytes(), mvt.read_bytes()) == before and link.is_symlink()


def test_y_replaces_a_regular_file_and_keeps_a_link_a_link(runner, tmp_path, clip, mvt, tiny_model_json):
    target = tmp_path / "target.mvt"
    target.write_bytes(b"old")
    link = tmp_path / "link.mvt"
    link.symlink_to(target)
    res = _encode(runner, clip, link, tiny_model_json, "-y")
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and target.read_bytes()[:4] == b"\x8aMVT"
    dangling = tmp_path / "dangling.mvt"
    dangling.symlink_to(tmp_path / "nowhere" / "x.mvt")
    _one_line_error(_encode(runner, clip, dangling, tiny_model_json, "-y"), 1, "missing")


def test_devices_are_written_through_not_replaced(runner, clip, mvt, tiny_model_json):
    res = _encode(runner, clip, "/dev/null", tiny_model_json, "-y")
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["decode", str(mvt), "-o", "/dev/null", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["trim", str(mvt), "/dev/null", "--planes", "1"])
    assert res.exit_code == 0, res.output
    import stat

    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_receives_a_y4m_stream(runner, tmp_path, mvt):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(fifo), "--device", "cpu"])
    reader.join(timeout=60)
    assert res.exit_code == 0, res.output
    assert got and got[0].startswith(b"YUV4MPEG2 W32 H32") and got[0].count(b"FRAME") == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mvt", "in.y4m", "pipe"]


def test_png_folder_only_touches_its_own_frames(runner, tmp_path, mvt):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"notes")
    (out / "000099.png").write_bytes(b"old frame")
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(out), "--device", "cpu"])
    _one_line_error(res, 1, "already holds frames")
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(out), "-y", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    names = sorted(os.listdir(out))
    assert names == [f"{i:06d}.png" for i in range(5)] + ["000099.png", "notes.txt"]
    assert (out / "notes.txt").read_bytes() == b"notes" and (out / "000099.png").read_bytes() == b"old frame"
    # A frame name taken by a folder: refused, nothing moved, nothing left behind.
    for i in range(5):
        (out / f"{i:06d}.png").unlink()
    (out / "000002.png").mkdir()
    res = runner.invoke(main, ["decode", str(mvt), "-o", str(out), "-y", "--device", "cpu"])
    _one_line_error(res, 1, "not a regular file")
    assert sorted(os.listdir(out)) == ["000002.png", "000099.png", "notes.txt"]


def test_a_batch_never_writes_one_output_twice(runner, tmp_path, tiny_model_json):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_clip(tmp_path / "a" / "clip.y4m", codec="rawvideo", frames=5, size=(32, 32))
    b = make_clip(tmp_path / "b" / "clip.mov", codec="mpeg4", frames=5, size=(32, 32))
    out = tmp_path / "out"
    res = runner.invoke(main, ["encode", str(a), str(b), "-d", str(out), "-y", "--model", str(tiny_model_json),
                               "--device", "cpu"])
    _one_line_error(res, 1, "would both write")
    assert not any(out.iterdir())
    res = runner.invoke(main, ["encode", str(a), str(a), "-d", str(out), "--model", str(tiny_model_json)])
    _one_line_error(res, 1, "would both write")


def test_out_dir_that_is_a_file_is_refused(runner, tmp_path, clip, tiny_model_json):
    f = tmp_path / "notadir"
    f.write_bytes(b"x")
    res = runner.invoke(main, ["encode", str(clip), "-d", str(f), "--model", str(tiny_model_json)])
    assert res.exit_code in (1, 2) and "Traceback" not in res.output
    assert f.read_bytes() == b"x"


def test_inputs_of_every_kind_get_one_line(runner, tmp_path, clip, mvt, tiny_model_json):
    fifo = tmp_path / "fifo.mvt"
    os.mkfifo(fifo)
    broken = tmp_path / "broken.mvt"
    broken.symlink_to(tmp_path / "gone.mvt")
    commands = (lambda src: ["info", src],
                lambda src: ["decode", src, "-o", str(tmp_path / "o.y4m"), "--device", "cpu"],
                lambda src: ["trim", src, str(tmp_path / "t.mvt"), "--planes", "1"])
    for command in commands:
        for src, words in ((fifo, "pipe or device"), ("/dev/zero", "pipe or device"), (tmp_path, "folder"),
                           (broken, "broken link"), (tmp_path / "missing.mvt", "no such file")):
            _one_line_error(runner.invoke(main, command(str(src))), 1, words)
    _one_line_error(_encode(runner, "/dev/zero", tmp_path / "z.mvt", tiny_model_json), 1, "pipe or device")
    _one_line_error(_encode(runner, fifo, tmp_path / "z.mvt", tiny_model_json), 1, "pipe or device")
    # --bitrate probes the input first: a FIFO must be refused before that, not block it.
    _one_line_error(_encode(runner, fifo, tmp_path / "z.mvt", tiny_model_json, "--bitrate", "100"), 1, "pipe or device")
    _one_line_error(_encode(runner, "-", tmp_path / "z.mvt", tiny_model_json), 1, "stdin")
    assert not (tmp_path / "o.y4m").exists() and not (tmp_path / "t.mvt").exists()


def test_output_on_stdout_keeps_messages_off_it(runner, mvt):
    res = runner.invoke(main, ["decode", str(mvt), "-o", "-", "--json", "--device", "cpu"])
    _one_line_error(res, 2, "stdout")


def test_bench_refuses_a_results_folder_that_is_not_a_folder(runner, tmp_path):
    f = tmp_path / "results"
    f.write_bytes(b"x")
    for out in (str(f), "/dev/null"):
        res = runner.invoke(main, ["bench", "--out", out, "--codec", "hevc", "--videos", str(tmp_path)])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f.read_bytes() == b"x"
