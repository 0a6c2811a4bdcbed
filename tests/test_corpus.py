"""vtoken tokenize at corpus scale: records equal vtoken.tokenize's on every engine (inline,
local processes, Ray), a bad file is recorded and skipped, a killed run resumes to the same
shards, shards round-trip to frames, encode -d runs on the same engines."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pyarrow")

from corpus_media import make_corpus, reference_records  # noqa: E402

CLIP = 5       # frames per clip: a 20-frame clip gives 4 clips, one of them short
MAX_SIDE = 56  # downsizes every source here, to sizes that are not multiples of 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model(tiny_model_json):
    import vtoken

    return vtoken.load_model(tiny_model_json)


def run(corpus, out, model_json, **kw):
    from vtoken.corpus import tokenize_corpus

    kw.setdefault("clip_frames", CLIP)
    kw.setdefault("max_side", MAX_SIDE)
    kw.setdefault("sources_per_shard", 2)
    return tokenize_corpus([corpus], out, model=str(model_json), device="cpu", **kw)


def shard_hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*.parquet"))}


def records(out: Path) -> list[dict]:
    from vtoken.data import iter_records

    return list(iter_records(out))


@pytest.fixture(scope="module")
def inline_run(corpus, tiny_model_json, tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "tokens"
    return out, run(corpus, out, tiny_model_json)


def test_records_are_vtoken_tokenize_of_each_clip(inline_run, corpus, model):
    out, res = inline_run
    got = records(out)
    by_source: dict[str, list[dict]] = {}
    for r in got:
        by_source.setdefault(Path(r["source"]).name, []).append(r)
    assert sorted(by_source) == ["a.mp4", "b.mp4", "c.png", "d.jpg"]
    for name, recs in by_source.items():
        path = next(corpus.rglob(name))
        ref = reference_records(path, model, CLIP, MAX_SIDE)
        assert [r["clip_index"] for r in recs] == list(range(len(ref)))
        for r, (first, count, clip, tokens) in zip(recs, ref):
            assert (r["first_frame"], r["frame_count"]) == (first, count)
            assert (r["height"], r["width"]) == clip.shape[1:3]
            assert max(r["width"], r["height"]) == min(MAX_SIDE, max(r["orig_width"], r["orig_height"]))
            assert r["tokens"].dtype == np.int64 and np.array_equal(r["tokens"], tokens)
            assert r["token_shape"] == list(tokens.shape)
            assert r["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert r["model_name"] == "test-tiny" and r["model_sha256"] == model.identity.sha256
            assert r["is_image"] == (name in ("c.png", "d.jpg"))
            assert r["planes"] == model.config.bits
    assert len(by_source["a.mp4"]) == 4 and by_source["a.mp4"][-1]["frame_count"] == 20 - 3 * CLIP
    assert (by_source["a.mp4"][0]["orig_width"], by_source["a.mp4"][0]["orig_height"]) == (64, 48)


def test_manifest_lists_done_failed_and_skipped(inline_run):
    out, res = inline_run
    manifest = json.loads((out / "manifest.json").read_text())
    status = {Path(s["path"]).name: s for s in manifest["sources"]}
    assert {k: v["status"] for k, v in status.items()} == {
        "a.mp4": "done", "bad.mp4": "failed", "c.png": "done", "d.jpg": "done", "b.mp4": "done", "notes.txt": "skipped"}
    assert "not a video or image" in status["bad.mp4"]["error"] and "\n" not in status["bad.mp4"]["error"]
    assert not res.ok and [Path(f["path"]).name for f in res.failed] == ["bad.mp4"]
    t = manifest["totals"]
    assert (t["done"], t["failed"], t["skipped"], t["records"]) == (4, 1, 1, 4 + 2 + 1 + 1)
    assert t["tokens"] == sum(r["tokens"].size for r in records(out))
    assert [s["name"] for s in manifest["shards"]] == sorted(p.name for p in out.glob("shard-*.parquet"))
    assert not list(out.glob(".*"))  # no temporary files left


def test_local_processes_give_identical_shards(inline_run, corpus, tiny_model_json, tmp_path):
    out, _ = inline_run
    res = run(corpus, tmp_path / "tokens", tiny_model_json, workers=2)
    assert res.engine == "local" and res.totals["records"] == 8
    assert shard_hashes(tmp_path / "tokens") == shard_hashes(out)


@pytest.fixture(scope="module")
def ray_engine():
    pytest.importorskip("ray")
    from vtoken.corpus.engine import RayEngine

    engine = RayEngine("auto", workers=2, threads=1)
    yield engine
    engine.close()


def test_ray_gives_identical_shards(inline_run, corpus, tiny_model_json, tmp_path, ray_engine):
    out, _ = inline_run
    res = run(corpus, tmp_path / "tokens", tiny_model_json, engine=ray_engine)
    assert res.engine == "ray" and [Path(f["path"]).name for f in res.failed] == ["bad.mp4"]
    assert shard_hashes(tmp_path / "tokens") == shard_hashes(out)


def test_ray_encode_gives_the_same_files(corpus, tiny_model_json, tmp_path, ray_engine):
    import vtoken
    from vtoken.corpus import encode_corpus

    inputs = [corpus / "a.mp4", corpus / "c.png", corpus / "bad.mp4"]
    results, failures = encode_corpus(inputs, tmp_path / "ray", model=str(tiny_model_json), device="cpu",
                                      engine=ray_engine, planes=3)
    assert [Path(f["input"]).name for f in failures] == ["bad.mp4"] and len(results) == 2
    for name in ("a", "c"):
        src = corpus / ("a.mp4" if name == "a" else "c.png")
        vtoken.encode(src, tmp_path / f"{name}.mvt", model=str(tiny_model_json), device="cpu", planes=3)
        assert (tmp_path / "ray" / f"{name}.mvt").read_bytes() == (tmp_path / f"{name}.mvt").read_bytes()


def test_cli_encode_with_workers(corpus, tiny_model_json, tmp_path):
    from vtoken.cli import main

    res = CliRunner().invoke(main, ["encode", str(corpus / "a.mp4"), str(corpus / "bad.mp4"), "-d", str(tmp_path),
                                    "--workers", "2", "--model", str(tiny_model_json), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert (tmp_path / "a.mvt").is_file() and not (tmp_path / "bad.mvt").exists()


def test_a_killed_worker_is_replaced(inline_run, corpus, tiny_model_json, tmp_path):
    """SIGKILL one worker process after the first source: its sources are retried in a new pool."""
    import multiprocessing

    out, _ = inline_run
    killed = []

    def kill_one(event):
        children = multiprocessing.active_children()
        if not killed and children:
            os.kill(children[0].pid, signal.SIGKILL)
            killed.append(children[0].pid)

    run(corpus, tmp_path / "tokens", tiny_model_json, workers=2, on_source=kill_one)
    assert killed
    assert shard_hashes(tmp_path / "tokens") == shard_hashes(out)


def test_killed_run_resumes_to_the_same_shards(inline_run, corpus, tiny_model_json, tmp_path):
    """SIGKILL the CLI once the first group is complete; --resume finishes without redoing it."""
    out, _ = inline_run
    dst = tmp_path / "tokens"
    cmd = [sys.executable, "-m", "vtoken.cli", "tokenize", str(corpus), "--out", str(dst), "--model",
           str(tiny_model_json), "--device", "cpu", "--clip-frames", str(CLIP), "--max-side", str(MAX_SIDE),
           "--sources-per-shard", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = dst / "state" / "group-000000.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert first.exists() and not (dst / "manifest.json").exists()  # killed mid-way
    done_before = first.stat().st_mtime_ns
    (dst / ".shard-000001-000.parquet.abc.part").write_bytes(b"half a shard")  # as a kill mid-write leaves
    refused = subprocess.run(cmd, capture_output=True, text=True)  # a previous run: --resume or -y
    assert refused.returncode == 1 and "--resume" in refused.stderr
    res = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr  # bad.mp4 failed
    assert json.loads(res.stdout)["resumed_groups"] >= 1
    assert first.stat().st_mtime_ns == done_before  # not redone
    assert shard_hashes(dst) == shard_hashes(out)
    assert not list(dst.glob(".*"))


def test_resume_refuses_other_settings(inline_run, corpus, tiny_model_json):
    from vtoken.errors import UsageError

    out, _ = inline_run
    with pytest.raises(UsageError, match="clip_frames"):
        run(corpus, out, tiny_model_json, resume=True, clip_frames=9)


def test_cli_round_trip_detokenize(inline_run, corpus, model, tmp_path):
    import vtoken
    from vtoken.cli import main
    from vtoken.data import detokenize_record, find_record
    from vtoken.media import VideoReader

    out, _ = inline_run
    record = find_record(out, source="a.mp4", clip=3)
    first, count, clip, tokens = reference_records(corpus / "a.mp4", model, CLIP, MAX_SIDE)[3]
    expected = vtoken.detokenize(vtoken.tokenize(clip, model=model, device="cpu"), model=model, device="cpu")
    expected = expected[:count, : clip.shape[1], : clip.shape[2]]
    assert np.array_equal(detokenize_record(record, device="cpu"), expected)
    res = CliRunner().invoke(main, ["detokenize", str(out), "--source", "a.mp4", "--clip", "3", "-o",
                                    str(tmp_path / "frames") + "/", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with VideoReader(tmp_path / "frames") as reader:
        assert np.array_equal(np.stack(list(reader.frames())), expected)  # PNG: exact
    res = CliRunner().invoke(main, ["detokenize", str(out), "--row", "0", "-o", str(tmp_path / "c.y4m"), "--device", "cpu"])
    assert res.exit_code == 0 and (tmp_path / "c.y4m").stat().st_size > 0


def test_cli_detokenize_output_checks(inline_run, tmp_path):
    """detokenize -o has decode's output checks: its own input (a shard), `.`, and (without
    -y) an existing file are refused before the model loads; nothing is touched."""
    from vtoken.cli import main

    out, _ = inline_run
    shard = sorted(out.glob("shard-*.parquet"))[0]
    before = shard.read_bytes()
    (tmp_path / "shard.mp4").symlink_to(shard)  # the input under a video name
    (tmp_path / "old.mp4").write_bytes(b"keep")
    for dst, extra, words in ((str(tmp_path / "shard.mp4"), ["-y"], "also an input"), (".", ["-y"], "current"),
                              (str(tmp_path / "old.mp4"), [], "exists")):
        res = CliRunner().invoke(main, ["detokenize", str(shard), "--row", "0", "-o", dst, *extra, "--device", "cpu"])
        assert res.exit_code != 0 and words in res.output, res.output
    assert shard.read_bytes() == before and (tmp_path / "old.mp4").read_bytes() == b"keep"


def test_cli_tokenize_refuses_bad_counts(corpus, tmp_path):
    from vtoken.cli import main

    for flag, value in (("--workers", "0"), ("--clip-frames", "0"), ("--planes", "0")):
        res = CliRunner().invoke(main, ["tokenize", str(corpus / "c.png"), "--out", str(tmp_path / "t"), flag, value,
                                        "--device", "cpu"])
        assert res.exit_code == 2 and "must be" in res.output, res.output
        assert not (tmp_path / "t").exists()


def test_cli_tokenize_exit_code_and_existing_output(corpus, tiny_model_json, tmp_path):
    from vtoken.cli import main

    args = ["tokenize", str(corpus / "c.png"), "--out", str(tmp_path / "t"), "--model", str(tiny_model_json),
            "--device", "cpu"]
    assert CliRunner().invoke(main, args).exit_code == 0
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "--resume" in res.output
    res = CliRunner().invoke(main, [*args, "--resume"])
    assert res.exit_code == 0 and "1 done" in res.output
    res = CliRunner().invoke(main, [*args, "-y", "--clip-frames", "4"])
    assert res.exit_code == 2 and "1 + 4n" in res.output


def test_ray_missing_says_how_to_install(monkeypatch):
    from vtoken.corpus.engine import RayEngine
    from vtoken.errors import UsageError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"pip install 'vtoken\[ray\]'"):
        RayEngine("auto")


def test_import_vtoken_imports_neither_ray_nor_pyarrow():
    code = "import sys, vtoken, vtoken.corpus, vtoken.cli; print('ray' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_parts_split_by_size_in_record_order(inline_run, corpus, tiny_model_json, tmp_path):
    """A small --shard-mb splits a group into parts; records keep their order across them."""
    out, _ = inline_run
    res = run(corpus, tmp_path / "tokens", tiny_model_json, sources_per_shard=64, shard_mb=0.002)
    names = sorted(p.name for p in (tmp_path / "tokens").glob("shard-*.parquet"))
    assert len(names) == res.totals["shards"] > 2 and names[0] == "shard-000000-000.parquet"
    assert all(n.startswith("shard-000000-") for n in names)
    key = lambda r: (r["source"], r["clip_index"])  # noqa: E731
    assert [key(r) for r in records(tmp_path / "tokens")] == [key(r) for r in records(out)]
    assert all(np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(records(tmp_path / "tokens"), records(out)))


def _ray_model_actor_pids() -> list[int]:
    """Processes of the Ray instance this test session started that hold a model actor."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"MapBatches(_TokenizeActor)" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_ray_replaces_a_killed_model_actor(inline_run, corpus, tiny_model_json, tmp_path, ray_engine):
    """SIGKILL a model actor after the first source: Ray Data restarts it and retries its batch."""
    out, _ = inline_run
    killed = []

    def kill_one(event):
        pids = _ray_model_actor_pids()
        if not killed and pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    run(corpus, tmp_path / "tokens", tiny_model_json, engine=ray_engine, on_source=kill_one)
    assert killed
    assert shard_hashes(tmp_path / "tokens") == shard_hashes(out)


def test_an_output_folder_inside_the_sources_is_not_a_source(tmp_path, tiny_model_json):
    from clips import make_image
    from vtoken.corpus import tokenize_corpus

    make_image(tmp_path / "x.png")
    for _ in range(2):  # the second run sees the first run's shards and manifest in tmp_path/tokens
        res = tokenize_corpus([tmp_path], tmp_path / "tokens", model=str(tiny_model_json), device="cpu",
                              overwrite=True)
        assert (res.totals["done"], res.totals["skipped"]) == (1, 0)


def test_decoding_ahead_keeps_order_errors_and_stops_when_dropped():
    import threading

    from vtoken.corpus.work import ahead

    def items(fail_at=None):
        for i in range(10):
            if i == fail_at:
                raise ValueError("bad frame")
            yield i

    assert list(ahead(items())) == list(range(10))
    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for x in ahead(items(fail_at=4)):
            got.append(x)
    assert got == [0, 1, 2, 3]
    before = threading.active_count()
    gen = ahead(items())
    next(gen)
    gen.close()  # the consumer is gone: the thread must end, not block on a full queue
    time.sleep(0.5)
    assert threading.active_count() <= before
