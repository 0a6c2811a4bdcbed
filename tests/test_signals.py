"""Issue 11: SIGINT, SIGTERM and SIGHUP leave no output, visible or hidden, and exit with
128 + the signal; `-o -` pipes y4m. These need a real process (subprocess), so they are few:
each waits until the output's temporary file exists, then signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clips import make_clip

VTOKEN = [sys.executable, "-m", "vtoken.cli"]


def _env(model_dir) -> dict:
    env = dict(os.environ, VTOKEN_MODEL_PATH=str(model_dir), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    # Long enough that the encode is still running a few seconds after its output appears.
    return make_clip(tmp_path_factory.mktemp("sig") / "long.y4m", codec="rawvideo", frames=300, size=(128, 96))


def _wait_for_part(folder: Path, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.endswith(".part") for p in folder.iterdir()):
            return
        if proc.poll() is not None:
            pytest.fail(f"vtoken ended before it started writing: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail("no temporary output appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_leaves_nothing_and_exits_128_plus_n(tmp_path, long_clip, tiny_model_json, sig):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([*VTOKEN, "encode", str(long_clip), str(out / "o.mvt"), "--model", str(tiny_model_json),
                             "--device", "cpu"], env=_env(tiny_model_json.parent), stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    _wait_for_part(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert list(out.iterdir()) == []


def test_signal_during_a_png_decode_leaves_no_folder(tmp_path, tiny_model_json):
    import vtoken

    (tmp_path / "src").mkdir()
    src = make_clip(tmp_path / "src" / "dec.y4m", codec="rawvideo", frames=120, size=(128, 96))
    mvt = tmp_path / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    proc = subprocess.Popen([*VTOKEN, "decode", str(mvt), "-o", str(tmp_path / "frames/"), "--device", "cpu"],
                            env=_env(tiny_model_json.parent), stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    _wait_for_part(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mvt", "src"]


def test_dash_output_pipes_y4m_to_the_next_program(tmp_path, tiny_model_json):
    import vtoken

    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    mvt = tmp_path / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    res = subprocess.run([*VTOKEN, "decode", str(mvt), "-o", "-", "--device", "cpu"], capture_output=True,
                         env=_env(tiny_model_json.parent), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"YUV4MPEG2 W32 H32") and res.stdout.count(b"FRAME") == 5
    assert b"a.mvt -> -: 5 frames" in res.stderr  # the summary stays off the data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mvt", "in.y4m"]
