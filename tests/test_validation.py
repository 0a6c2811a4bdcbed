"""Issue 11: every count and quality is range-checked in the CLI and the API; the API answers
wrong types, shapes, dtypes and empty inputs with one vtoken sentence."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import vtoken
from vtoken.cli import main
from vtoken.errors import UsageError

from clips import make_clip


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_json):
    folder = tmp_path_factory.mktemp("val")
    src = make_clip(folder / "in.y4m", codec="rawvideo", frames=5, size=(32, 32))
    mvt = folder / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, device="cpu")
    return folder, src, mvt


def _sentence(exc: Exception) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 300, text


@pytest.mark.parametrize("kwargs", [
    {"quality": 2.5}, {"quality": True}, {"quality": "3"}, {"quality": 0}, {"quality": 9},
    {"planes": 0}, {"planes": -1}, {"planes": 65}, {"planes": 3.0},
    {"bpp": 0}, {"bpp": -0.1}, {"bpp": float("nan")}, {"bpp": float("inf")}, {"bpp": "0.1"},
    {"chunk_frames": 0}, {"chunk_frames": 6}, {"chunk_frames": 2.0}, {"key_interval": 0},
    {"key_interval": None}, {"precision": "fp16"}, {"device": "tpu"}, {"overwrite": "yes"},
    {"planes": 2, "quality": 3},
])
def test_encode_arguments_are_checked(files, tiny_model_json, kwargs):
    folder, src, _ = files
    with pytest.raises(UsageError) as err:
        vtoken.encode(src, folder / "o.mvt", model=tiny_model_json, **{"device": "cpu", **kwargs})
    _sentence(err.value)
    assert not (folder / "o.mvt").exists()


def test_planes_beyond_the_model_are_refused(files, tiny_model_json):
    folder, src, _ = files
    with pytest.raises(UsageError, match="from 1 to 6"):
        vtoken.encode(src, folder / "o.mvt", model=tiny_model_json, device="cpu", planes=7)


@pytest.mark.parametrize("src, dst", [(123, "o.mvt"), (None, "o.mvt"), ("", "o.mvt"), ("in.y4m", 5),
                                      ("in.y4m", b"o.mvt"), ("in.y4m", "")])
def test_paths_must_be_paths(files, tiny_model_json, src, dst):
    folder, _, _ = files
    with pytest.raises(UsageError) as err:
        vtoken.encode(src if not isinstance(src, str) or not src else str(folder / src),
                      dst if not isinstance(dst, str) or not dst else str(folder / dst),
                      model=tiny_model_json, device="cpu")
    _sentence(err.value)


@pytest.mark.parametrize("kwargs", [
    {"start": -1}, {"start": 1.5}, {"frames": 0}, {"frames": "2"}, {"planes": 0}, {"planes": 7},
    {"planes": 2.0}, {"tolerant": "no"}, {"precision": "int8"},
])
def test_decode_arguments_are_checked(files, kwargs):
    folder, _, mvt = files
    with pytest.raises(UsageError) as err:
        vtoken.decode(mvt, folder / "o.y4m", **{"device": "cpu", **kwargs})
    _sentence(err.value)
    with pytest.raises(UsageError):
        list(vtoken.decode_frames(mvt, **{"device": "cpu", **kwargs}))
    assert not (folder / "o.y4m").exists()


@pytest.mark.parametrize("frames, words", [
    (np.zeros((2, 16, 16, 3), np.float32), "uint8"),
    (np.zeros((2, 16, 16), np.uint8), "shape"),
    (np.zeros((2, 16, 16, 4), np.uint8), "shape"),
    (np.zeros((0, 16, 16, 3), np.uint8), "at least one"),
    (np.zeros((1, 0, 16, 3), np.uint8), "at least one"),
    ([[1, 2], [3]], "ragged"),
    ("frames.png", "uint8 array"),
    (None, "uint8 array"),
    (7, "uint8 array"),
])
def test_tokenize_refuses_bad_frames_in_one_sentence(tiny_model_json, frames, words):
    with pytest.raises(UsageError, match=words) as err:
        vtoken.tokenize(frames, model=tiny_model_json, device="cpu")
    _sentence(err.value)


@pytest.mark.parametrize("tokens, words", [
    (np.zeros((1, 2, 2), np.float32), "integers"),
    (np.zeros((1, 2, 2), bool), "integers"),
    (np.zeros((0, 2, 2), np.int64), "at least one"),
    (np.zeros((2,), np.int64), "shape"),
    (np.full((1, 2, 2), 64, np.int64), "2\\*\\*6"),
    (np.full((1, 2, 2), -1, np.int64), "2\\*\\*6"),
    ([[1], [2, 3]], "ragged"),
    ("tokens", "integer array"),
])
def test_detokenize_refuses_bad_tokens_in_one_sentence(tiny_model_json, tokens, words):
    with pytest.raises(UsageError, match=words) as err:
        vtoken.detokenize(tokens, model=tiny_model_json, device="cpu")
    _sentence(err.value)


def test_tokenize_planes_are_checked(tiny_model_json):
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    for planes in (0, 7, 1.5, True):
        with pytest.raises(UsageError):
            vtoken.tokenize(frames, model=tiny_model_json, planes=planes, device="cpu")


@pytest.mark.parametrize("args", [
    ["--bits", "0"], ["--bits", "65"], ["--quality", "9"], ["--quality", "2.5"], ["--bpp", "0"], ["--bpp", "nan"],
    ["--bitrate", "-5"], ["--chunk-frames", "0"], ["--key-interval", "0"],
])
def test_cli_encode_ranges_exit_2(files, tiny_model_json, args):
    folder, src, _ = files
    res = CliRunner().invoke(main, ["encode", str(src), str(folder / "c.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and not (folder / "c.mvt").exists()


@pytest.mark.parametrize("args", [["--planes", "0"], ["--planes", "7"], ["--start", "-1"], ["--frames", "0"]])
def test_cli_decode_ranges_exit_2(files, args):
    folder, _, mvt = files
    res = CliRunner().invoke(main, ["decode", str(mvt), "-o", str(folder / "c.y4m"), "--device", "cpu", *args])
    assert res.exit_code == 2, res.output
    assert not (folder / "c.y4m").exists()


def test_info_refuses_a_non_path(files):
    with pytest.raises(UsageError):
        vtoken.info(42)


@pytest.mark.parametrize("call", [
    lambda m: vtoken.load_model(123),
    lambda m: vtoken.load_model(m, device="gpu"),
    lambda m: vtoken.load_model(m, device="cuda:x"),
    lambda m: vtoken.tokenize(np.zeros((1, 8, 8, 3), np.uint8), model=3.5, device="cpu"),
    lambda m: vtoken.tokenize(np.zeros((1, 8, 8, 3), np.uint8), model=m, device=7),
])
def test_models_and_devices_are_checked(tiny_model_json, call):
    with pytest.raises(UsageError) as err:
        call(tiny_model_json)
    _sentence(err.value)


def test_decode_refuses_a_model_of_the_wrong_type(files):
    _, _, mvt = files
    with pytest.raises(UsageError):
        list(vtoken.decode_frames(mvt, model=5, device="cpu"))
