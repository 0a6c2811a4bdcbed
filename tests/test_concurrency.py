"""One loaded model, many streams at once: threads and interleaved generators give the bits
and frames each stream gives alone (the causal state belongs to the stream, not the model)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import vtoken
from vtoken.models import Tokenizer, TokenizerConfig
from vtoken.models.stream import StreamState

from clips import make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [make_clip(folder / f"c{i}.y4m", codec="rawvideo", frames=21, size=(48, 32), seed=i) for i in range(4)]


def _decode_all(path, model) -> np.ndarray:
    return np.concatenate(list(vtoken.decode_frames(path, model=model, device="cpu")))


def test_threads_share_one_model(tmp_path, clips, tiny_model_json):
    model = vtoken.load_model(tiny_model_json)
    alone = []
    for i, src in enumerate(clips):
        vtoken.encode(src, tmp_path / f"alone{i}.mvt", model=model, device="cpu", chunk_frames=9, key_interval=2)
        alone.append(((tmp_path / f"alone{i}.mvt").read_bytes(), _decode_all(tmp_path / f"alone{i}.mvt", model)))

    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            runs = []
            for r in range(2):
                dst = tmp_path / f"t{i}-{r}.mvt"
                vtoken.encode(clips[i], dst, model=model, device="cpu", chunk_frames=9, key_interval=2)
                runs.append((dst.read_bytes(), _decode_all(dst, model)))
            got[i] = runs
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (data, frames) in enumerate(alone):
        for run_data, run_frames in got[i]:
            assert run_data == data
            np.testing.assert_array_equal(run_frames, frames)


def test_interleaved_decode_frames_equal_each_alone(tmp_path, clips, tiny_model_json):
    model = vtoken.load_model(tiny_model_json)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"g{i}.mvt")
        vtoken.encode(clips[i], paths[-1], model=model, device="cpu", chunk_frames=5, key_interval=4)
    alone = [list(vtoken.decode_frames(p, model=model, device="cpu")) for p in paths]
    assert len(alone[0]) > 2  # several chunks, so the state really is carried between them
    gens = [vtoken.decode_frames(p, model=model, device="cpu") for p in paths]
    mixed: list[list[np.ndarray]] = [[], []]
    for step in range(max(map(len, alone))):
        for g, out in zip(gens, mixed):
            chunk = next(g, None)
            if chunk is not None:
                out.append(chunk)
    for want, have in zip(alone, mixed):
        assert len(want) == len(have)
        for a, b in zip(want, have):
            np.testing.assert_array_equal(a, b)


def test_interleaved_states_on_one_tokenizer():
    """Two streams through one Tokenizer, chunk by chunk in turn, equal each stream alone."""
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16))).eval()
    videos = [torch.rand(1, 3, 13, 16, 24) * 2 - 1 for _ in range(2)]
    pieces = (5, 4, 4)

    def alone(video):
        enc, dec, bits, outs, start = StreamState(), StreamState(), [], [], 0
        for n in pieces:
            bits.append(model.encode_bits(video[:, :, start:start + n], state=enc))
            outs.append(model.decode_bits(bits[-1], state=dec))
            start += n
        return torch.cat(bits, 2), torch.cat(outs, 2)

    want = [alone(v) for v in videos]
    states = [(StreamState(), StreamState()) for _ in videos]
    bits, outs, start = [[], []], [[], []], 0
    for n in pieces:
        for i, v in enumerate(videos):
            bits[i].append(model.encode_bits(v[:, :, start:start + n], state=states[i][0]))
            outs[i].append(model.decode_bits(bits[i][-1], state=states[i][1]))
        start += n
    for i in range(2):
        assert torch.equal(torch.cat(bits[i], 2), want[i][0])
        assert torch.equal(torch.cat(outs[i], 2), want[i][1])
    # The whole clip in one call (no state) gives the same: the stream changed nothing in the model.
    assert torch.equal(model.encode_bits(videos[0]), want[0][0])


def test_a_state_serves_one_half_of_the_model():
    model = Tokenizer(TokenizerConfig(bits=6, channels=(8, 16, 16, 16))).eval()
    state = StreamState()
    bits = model.encode_bits(torch.zeros(1, 3, 5, 16, 16), state=state)
    with pytest.raises(ValueError, match="separate states"):
        model.decode_bits(bits, state=state)


def test_a_failed_encode_stops_its_threads_before_returning(tmp_path, tiny_model_json):
    """The crash's own cause: after a model failure the reading thread went on decoding the
    input while the caller closed it (a use-after-free inside libav). Every stage thread must
    be gone when encode raises, even while the exception (and its frames) are still alive."""
    model = vtoken.load_model(tiny_model_json, cache=False)
    real, calls = model.encode, []

    def fail_second(video, state=None, planes=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated model failure")
        return real(video, state=state, planes=planes)

    model.encode = fail_second
    src = make_clip(tmp_path / "long.y4m", codec="rawvideo", frames=41, size=(32, 32))
    with pytest.raises(RuntimeError, match="simulated") as info:
        vtoken.encode(src, tmp_path / "x.mvt", model=model, device="cpu", chunk_frames=5)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("vtoken-")]
    assert alive == [], alive
    del info
