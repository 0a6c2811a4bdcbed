"""Tokens at corpus scale: many videos and images -> Parquet token shards, resumable, on local
processes or Ray (Ray Data: CPU tasks decode, an actor pool runs the model).

    from vtoken.corpus import tokenize_corpus
    result = tokenize_corpus(["videos/"], "tokens/", workers=2)      # or ray="auto"
    result.totals, result.failed

Read shards with vtoken.data.TokenShards. The parts: sources (what a source and a clip
are), records (the schema), work (what a worker does), engine (local processes / Ray),
shards (naming, atomic Parquet parts), manifest (state, resume, manifest.json), run (the
driver). Ray and pyarrow are imported only when used.
"""

from __future__ import annotations


def tokenize_corpus(*args, **kwargs):
    from .run import tokenize_corpus as run

    return run(*args, **kwargs)


def encode_corpus(*args, **kwargs):
    from .run import encode_corpus as run

    return run(*args, **kwargs)


__all__ = ["encode_corpus", "tokenize_corpus"]
