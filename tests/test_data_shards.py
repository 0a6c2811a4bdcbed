"""vtoken.data.TokenShards: under 2 DDP ranks (gloo) x 2 loader workers every record comes
out exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from corpus_media import make_corpus  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tiny_model_json):
    from vtoken.corpus import tokenize_corpus

    root = tmp_path_factory.mktemp("shards")
    out = root / "tokens"
    # one source per shard and 5-frame clips: 4 shards (bad.mp4 has none), 8 records
    tokenize_corpus([make_corpus(root)], out, model=str(tiny_model_json), device="cpu", clip_frames=5,
                    max_side=48, sources_per_shard=1)
    return out


def _keys(dataset_kwargs: dict, root: Path, workers: int) -> list[list]:
    import torch.utils.data

    from vtoken.data import TokenShards

    loader = torch.utils.data.DataLoader(TokenShards(root, **dataset_kwargs), batch_size=None, num_workers=workers)
    return [[Path(r["source"]).name, r["clip_index"], list(r["tokens"].shape)] for r in loader]


def _rank(rank: int, world: int, init: str, root: str, result: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        keys = _keys({}, Path(root), workers=2)
        Path(result, f"rank{rank}.json").write_text(json.dumps(keys))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_every_record_once_under_ddp_and_loader_workers(shards, tmp_path):
    import torch.multiprocessing as mp

    from vtoken.data import iter_records

    expected = sorted([Path(r["source"]).name, r["clip_index"], list(r["tokens"].shape)] for r in iter_records(shards))
    assert len(expected) == 8
    mp.spawn(_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", str(shards), str(tmp_path)), nprocs=2, join=True)
    per_rank = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(per_rank)  # both ranks got work
    assert sorted(k for keys in per_rank for k in keys) == expected


def test_shuffle_is_a_permutation_and_depends_on_the_epoch(shards):
    from vtoken.data import TokenShards

    plain = [(r["source"], r["clip_index"]) for r in TokenShards(shards)]
    ds = TokenShards(shards, shuffle=True, seed=1)
    first = [(r["source"], r["clip_index"]) for r in ds]
    ds.set_epoch(1)
    second = [(r["source"], r["clip_index"]) for r in ds]
    assert sorted(first) == sorted(second) == sorted(plain)
    assert first != second


def test_a_file_that_is_not_parquet_is_an_input_error(tmp_path):
    from vtoken.data import find_record
    from vtoken.errors import InputError

    bad = tmp_path / "shard-000000-000.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(InputError, match="cannot read the shard"):
        find_record(bad, row=0)
