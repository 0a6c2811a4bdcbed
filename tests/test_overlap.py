"""The concurrent stages (vtoken.codec.overlap) and the model precision switch: same results as
running inline, errors and early exits handled, bf16 decoding close to fp32."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import vtoken
from vtoken.codec import overlap
from vtoken.codec.overlap import ahead
from vtoken.codec.precision import resolve_precision
from vtoken.errors import UsageError

from clips import make_clip


def test_ahead_yields_every_item_in_order_from_a_worker_thread():
    seen_threads = []

    def produce():
        for i in range(50):
            seen_threads.append(threading.current_thread().name)
            yield i

    assert list(ahead(produce(), name="test-worker")) == list(range(50))
    assert set(seen_threads) == {"test-worker"}


def test_ahead_produces_the_next_item_while_the_consumer_holds_this_one():
    second_ready = threading.Event()

    def produce():
        yield 1
        second_ready.set()
        yield 2

    gen = ahead(produce(), depth=2)
    assert next(gen) == 1
    # Inline iteration could not get to item 2 before the consumer asks for it.
    assert second_ready.wait(timeout=30)
    assert list(gen) == [2]


def test_ahead_delivers_items_before_an_error_then_raises_it_unchanged():
    class Boom(RuntimeError):
        pass

    def produce():
        yield 1
        yield 2
        raise Boom("chunk 3 is damaged")

    got = []
    with pytest.raises(Boom, match="chunk 3 is damaged"):
        for x in ahead(produce()):
            got.append(x)
    assert got == [1, 2]


def test_closing_the_consumer_early_stops_the_worker_and_runs_the_producers_cleanup():
    cleaned = threading.Event()
    produced = []

    def produce():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            cleaned.set()

    before = threading.active_count()
    gen = ahead(produce(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert cleaned.is_set()
    assert threading.active_count() == before
    assert len(produced) <= 5  # the worker stopped a few items ahead, not at the end


def test_depth_zero_iterates_inline():
    names = []

    def produce():
        names.append(threading.current_thread().name)
        yield 1

    assert list(ahead(produce(), depth=0)) == [1]
    assert names == [threading.current_thread().name]


def test_overlapped_codec_gives_the_same_file_and_frames_as_inline(tmp_path, tiny_model_json, monkeypatch):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=30, size=(48, 40))
    results = {}
    for depth in (0, 2):
        monkeypatch.setattr(overlap, "DEPTH", depth)
        mvt = tmp_path / f"d{depth}.mvt"
        vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu")
        frames = np.concatenate(list(vtoken.decode_frames(mvt, model=tiny_model_json, device="cpu")))
        results[depth] = (mvt.read_bytes(), frames)
    assert results[0][0] == results[2][0]
    assert np.array_equal(results[0][1], results[2][1])


def test_abandoning_decode_frames_early_leaves_no_thread_behind(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=40, size=(48, 40))
    mvt = tmp_path / "a.mvt"
    vtoken.encode(src, mvt, model=tiny_model_json, chunk_frames=5, device="cpu")
    before = threading.active_count()
    gen = vtoken.decode_frames(mvt, model=tiny_model_json, device="cpu")
    first = next(gen)
    gen.close()
    assert first.shape == (5, 40, 48, 3)
    assert threading.active_count() == before


@pytest.mark.parametrize("precision,device,job,want", [
    ("auto", "cpu", "encode", "fp32"),
    ("auto", "cuda", "encode", "fp32"),
    ("auto", "cuda:0", "decode", "bf16"),
    ("bf16", "cpu", "encode", "bf16"),
    ("fp32", "cuda", "decode", "fp32"),
    (None, "cuda", "decode", "bf16"),
])
def test_precision_rules(precision, device, job, want):
    import torch

    assert resolve_precision(precision, torch.device(device), job) == want


@pytest.mark.parametrize("native", [True, False])
def test_search_and_decode_take_bf16_by_default_only_where_the_hardware_has_it(monkeypatch, native):
    import torch

    from vtoken.codec import precision as mod

    monkeypatch.setattr(mod, "native_bf16", lambda device: native)
    assert resolve_precision("auto", torch.device("cpu"), "search") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", torch.device("cpu"), "search") == "fp32"  # asked for: as asked
    assert resolve_precision("bf16", torch.device("cpu"), "search") == "bf16"
    assert resolve_precision("auto", torch.device("cpu"), "encode") == "fp32"  # the bits stay fp32's
    assert resolve_precision("auto", torch.device("cpu"), "decode") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", torch.device("cpu"), "decode") == "fp32"


def test_native_bf16_follows_the_cpus_instructions(monkeypatch):
    import torch

    from vtoken.codec.precision import native_bf16

    for avx512_bf16, amx, want in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert native_bf16(torch.device("cpu")) is want
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a PyTorch without the probes: fp32
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert native_bf16("cpu") is False


def test_unknown_precision_is_a_usage_error(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=5, size=(48, 40))
    with pytest.raises(UsageError, match="precision must be one of"):
        vtoken.encode(src, tmp_path / "x.mvt", model=tiny_model_json, precision="fp8", device="cpu")
    assert not (tmp_path / "x.mvt").exists()


def test_bf16_streams_decode_like_fp32_ones(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "in.y4m", codec="rawvideo", frames=9, size=(64, 48))
    fp32, bf16 = tmp_path / "fp32.mvt", tmp_path / "bf16.mvt"
    assert vtoken.encode(src, fp32, model=tiny_model_json, device="cpu").precision == "fp32"
    assert vtoken.encode(src, bf16, model=tiny_model_json, device="cpu", precision="bf16").precision == "bf16"
    # A bf16 encoder's stream is an ordinary stream: it decodes like any other.
    assert vtoken.decode(bf16, tmp_path / "b.y4m", model=tiny_model_json, device="cpu").frames == 9
    ref = np.concatenate(list(vtoken.decode_frames(fp32, model=tiny_model_json, device="cpu", precision="fp32")))
    low = np.concatenate(list(vtoken.decode_frames(fp32, model=tiny_model_json, device="cpu", precision="bf16")))
    diff = np.abs(ref.astype(np.int16) - low)
    assert ref.shape == low.shape
    assert diff.mean() < 1.0 and diff.max() <= 8  # bf16 rounding only, not a different picture


def test_an_interrupt_while_the_worker_starts_leaves_no_worker_inside_the_upstream(monkeypatch):
    """Ctrl-C can land inside Thread.start() (the signal handler runs in the main thread
    wherever it is). The worker must then end without touching its iterable: before the fix
    it ran on unjoined, inside the upstream iterator, so the caller's cleanup could meet
    'generator already executing' (an interrupt turned into exit 1) or a thread still reading
    from a file the caller frees."""
    produced = []

    def produce():
        for i in range(1000):
            produced.append(i)
            yield i

    real_start = threading.Thread.start

    def start_then_interrupt(self):
        real_start(self)
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt  # as the handler would, right after the OS thread exists

    inner = ahead(produce(), name="test-inner")  # iterated by the outer stage's worker
    outer = ahead(inner, name="test-outer")
    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        next(outer)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    for t in threading.enumerate():
        if t.name in ("test-inner", "test-outer"):
            t.join(2)
    assert not any(t.name in ("test-inner", "test-outer") for t in threading.enumerate())
    inner.close()  # what encode_chunks' finally does after an interrupt
    assert produced == []


def test_an_interrupt_during_the_join_still_waits_for_the_worker(monkeypatch):
    """The first Ctrl-C can also land while the consumer joins its worker on an early
    close; the worker must be gone before the interrupt goes on up."""
    release = threading.Event()

    def produce():
        yield 0
        release.wait(5)  # a slow item (a model pass) the worker is inside when the consumer leaves
        yield 1

    real_join = threading.Thread.join
    calls = []

    def join_interrupted_once(self, timeout=None):
        if self.name == "test-slow" and not calls:
            calls.append(1)
            release.set()
            raise KeyboardInterrupt
        return real_join(self, timeout)

    gen = ahead(produce(), name="test-slow")
    assert next(gen) == 0
    monkeypatch.setattr(threading.Thread, "join", join_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        gen.close()
    monkeypatch.setattr(threading.Thread, "join", real_join)
    assert calls == [1]
    assert not any(t.name == "test-slow" for t in threading.enumerate())
