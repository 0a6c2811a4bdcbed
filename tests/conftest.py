"""Shared fixtures: a tiny, deterministic model saved like a shipped one, so codec tests do
not depend on which weights the package ships."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a small random-init model (name `test-tiny`), on VTOKEN_MODEL_PATH."""
    import torch

    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    cfg = TokenizerConfig(bits=6, channels=(8, 16, 16, 16), res_blocks=(1, 1, 1, 1))
    model = Tokenizer(cfg).eval()
    folder = tmp_path_factory.mktemp("models")
    save_model(model, folder, "test-tiny")
    old = os.environ.get("VTOKEN_MODEL_PATH")
    os.environ["VTOKEN_MODEL_PATH"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("VTOKEN_MODEL_PATH", None)
    else:
        os.environ["VTOKEN_MODEL_PATH"] = old


@pytest.fixture(scope="session")
def tiny_model_json(tiny_model_dir):
    (path,) = sorted(tiny_model_dir.glob("test-tiny-*.json"))
    return path
