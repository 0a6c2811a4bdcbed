"""The training configs shipped in vtoken/train/configs: each one parses, and each one that
starts from a model still in the zoo fits that model's weights, so a recipe in the train
README does not fail minutes into a run (or a paid GPU call) on a renamed field or a
mismatched architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vtoken.errors import ModelError
from vtoken.models import Tokenizer, load_model
from vtoken.models.store import resolve_model
from vtoken.train.loop import TrainConfig, _load_into, build_model_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "vtoken" / "train" / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.json"))


def _starts_from_zoo(path: Path) -> bool:
    """init_from names a model still in the zoo, loaded as it is (no graft)."""
    data = json.loads(path.read_text())
    if "graft" in data or not data.get("init_from"):
        return False
    try:
        resolve_model(data["init_from"])
    except ModelError:
        return False
    return True


def test_the_config_folder_is_found():
    assert len(CONFIGS) > 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses(path):
    cfg = TrainConfig.load(path)
    assert cfg.steps > 0 and cfg.batch_size > 0


# Starting points still shipped: the configs a user can run from a fresh checkout as they are.
FROM_ZOO = [p for p in CONFIGS if _starts_from_zoo(p)]


def test_the_gpu_recipe_starts_from_a_shipped_model():
    # The first GPU session runs patch-h100.json as it is (vtoken/train/README.md).
    assert CONFIG_DIR / "patch-h100.json" in FROM_ZOO


def test_the_gpu_recipe_keeps_the_rate_term():
    # Every default since stage 9d was trained with the rate term over the coder's cross-plane
    # contexts; a GPU stretch without it would pull the bits back toward uniform use.
    losses = TrainConfig.load(CONFIG_DIR / "patch-h100.json").losses
    assert losses.rate > 0 and losses.rate_crossplane


@pytest.mark.parametrize("path", FROM_ZOO, ids=lambda p: p.stem)
def test_config_fits_the_model_it_starts_from(path):
    cfg = TrainConfig.load(path)
    model = Tokenizer(build_model_config(cfg.model))
    _load_into(model, load_model(cfg.init_from, cache=False).state_dict(), f"init_from {cfg.init_from}")
