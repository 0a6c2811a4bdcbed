"""Weight store: safetensors + JSON round trip, sha256 identity and checks, search path,
default model, cache, no pickle."""

import hashlib
import json

import numpy as np
import pytest
import torch

from vtoken.errors import ModelError, UsageError
from vtoken.models import Tokenizer, TokenizerConfig, find_model, load_model, load_model_by_identity, save_model
from vtoken.models import store

CFG = TokenizerConfig.preset("vtoken-tiny", channels=(8, 8, 16, 16), bits=5, entropy_group_size=5)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Empty zoo and search path for every test; fresh cache."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    monkeypatch.setattr(store, "ZOO_DIR", zoo)
    monkeypatch.delenv("VTOKEN_MODEL_PATH", raising=False)
    store.clear_cache()
    yield
    store.clear_cache()


def _model(seed=0):
    torch.manual_seed(seed)
    return Tokenizer(CFG).eval()


def test_round_trip_identical_outputs_and_identity(tmp_path):
    model = _model()
    prior = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    path = save_model(model, tmp_path, "unit", entropy_prior=prior)
    meta = json.loads(path.read_text())
    weights = tmp_path / meta["weights"]
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["format"] == "vtoken-model" and meta["version"] == 1 and meta["name"] == "unit"
    assert meta["sha256"] == sha and path.name == f"unit-{sha[:8]}.json" and weights.name == f"unit-{sha[:8]}.safetensors"
    assert TokenizerConfig.from_dict(meta["config"]) == CFG
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.identity == ("unit", sha) and loaded.identity.short == f"unit-{sha[:8]}"
    assert loaded.entropy_prior.dtype == np.int64 and np.array_equal(loaded.entropy_prior, prior)
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    bits = model.encode_bits(video)
    assert torch.equal(loaded.encode_bits(video), bits)
    assert torch.equal(loaded.decode_bits(bits), model.decode_bits(bits))


def test_prior_is_covered_by_the_hash(tmp_path):
    model = _model()
    a = save_model(model, tmp_path, "m", entropy_prior=[1, 2])
    b = save_model(model, tmp_path, "m", entropy_prior=[1, 3])
    c = save_model(model, tmp_path, "m")
    assert len({a.name, b.name, c.name}) == 3
    for _ in range(5):  # deterministic: same content, same name (safetensors metadata order)
        assert save_model(model, tmp_path, "m", entropy_prior=[1, 2]) == a
    assert load_model(c).entropy_prior is None


def test_cross_plane_predictor_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    from vtoken.entropy import CrossPlanePredictor

    model, k = _model(), CFG.bits
    weight = np.tril(np.arange(k * k, dtype=np.int64).reshape(k, k), -1)
    pred = CrossPlanePredictor(weight, np.arange(k, dtype=np.int64) - 2, -weight // 2)
    path = save_model(model, tmp_path, "xp", entropy_prior=np.ones((k, 4, 2), dtype=np.int16), entropy_predictor=pred)
    loaded = load_model(path, cache=False)
    np.testing.assert_array_equal(loaded.entropy_predictor.weight, weight)
    np.testing.assert_array_equal(loaded.entropy_predictor.bias, pred.bias)
    np.testing.assert_array_equal(loaded.entropy_predictor.neighbour_weight, pred.neighbour_weight)
    assert loaded.entropy_prior.dtype == np.int64 and loaded.entropy_prior.sum() == k * 8
    assert load_model(save_model(model, tmp_path, "plain"), cache=False).entropy_predictor is None
    # Part of a predictor is a damaged model, not a model without one.
    weights = tmp_path / json.loads(path.read_text())["weights"]
    tensors = load_file(weights)
    del tensors["entropy.crossplane.bias"]
    save_file(tensors, weights, metadata={"vtoken": json.dumps({"format": "vtoken-model"})})
    meta = json.loads(path.read_text())
    meta["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="part of a cross-plane predictor"):
        load_model(path, cache=False)


def test_sha_mismatch_raises(tmp_path):
    path = save_model(_model(), tmp_path, "bad")
    weights = path.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="do not match model bad"):
        load_model(path)


def test_half_precision_save(tmp_path):
    model = _model()
    full = save_model(model, tmp_path, "f32")
    half = save_model(model, tmp_path, "f16", dtype=torch.float16)
    assert half.with_suffix(".safetensors").stat().st_size < 0.6 * full.with_suffix(".safetensors").stat().st_size
    loaded = load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32
    w, w16 = model.decoder.conv_out.conv.weight, loaded.decoder.conv_out.conv.weight
    assert torch.allclose(w, w16, atol=1e-3) and not torch.equal(w, w16)


def test_search_path_names_and_identity(tmp_path, monkeypatch):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    pa = save_model(_model(0), a_dir, "alpha")
    pb1 = save_model(_model(1), b_dir, "beta")
    pb2 = save_model(_model(2), b_dir, "beta")
    monkeypatch.setenv("VTOKEN_MODEL_PATH", f"{a_dir}{__import__('os').pathsep}{b_dir}")
    sha_a = json.loads(pa.read_text())["sha256"]
    assert load_model("alpha").identity.sha256 == sha_a
    assert load_model(pb1.stem).identity.name == "beta"  # name-sha8
    assert load_model(pb1.with_suffix(".safetensors")).identity.name == "beta"  # path to weights
    with pytest.raises(ModelError, match="ambiguous"):
        load_model("beta")
    with pytest.raises(ModelError, match="not found"):
        load_model("gamma")
    assert find_model("alpha", sha_a) == pa and find_model("alpha", sha_a[:8]) == pa
    assert find_model("alpha", "0" * 64) is None and find_model("beta", sha_a) is None
    assert load_model_by_identity("alpha", sha_a).identity.sha256 == sha_a
    with pytest.raises(ModelError, match="it is not installed: put its .json/.safetensors in VTOKEN_MODEL_PATH"):
        load_model_by_identity("delta", "ab" * 32)
    assert pb2 != pb1


def test_default_model(tmp_path):
    with pytest.raises(ModelError, match="no default model"):
        load_model()
    first = save_model(_model(0), store.ZOO_DIR, "zoo-one")
    assert load_model().identity.name == "zoo-one"
    save_model(_model(1), store.ZOO_DIR, "zoo-two")
    with pytest.raises(ModelError, match="no DEFAULT"):
        load_model()
    (store.ZOO_DIR / "DEFAULT").write_text(first.stem + "\n")
    assert load_model().identity.name == "zoo-one"
    (store.ZOO_DIR / "DEFAULT").write_text("zoo-two\n")
    assert load_model().identity.name == "zoo-two"


def test_cache_returns_same_object_per_device(tmp_path):
    path = save_model(_model(), tmp_path, "cached")
    assert load_model(path) is load_model(str(path))
    assert load_model(path, cache=False) is not load_model(path)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = save_model(_model(), tmp_path, "safe")

    def refuse(*a, **k):
        raise AssertionError("pickle-based loading used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    assert load_model(path).identity.name == "safe"


def test_descriptor_cannot_point_outside_its_folder(tmp_path):
    path = save_model(_model(), tmp_path, "escape")
    meta = json.loads(path.read_text())
    meta["weights"] = "../" + meta["weights"]
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="only a file name"):
        load_model(path)


def test_bad_names_and_wrong_config(tmp_path):
    with pytest.raises(UsageError, match="not allowed"):
        save_model(_model(), tmp_path, "../evil")
    path = save_model(_model(), tmp_path, "cfg")
    meta = json.loads(path.read_text())
    meta["config"]["channels"] = [8, 8, 16, 24]
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="do not fit the config"):
        load_model(path)
    meta["config"]["bits"] = 200
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="invalid config"):
        load_model(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    path = save_model(_model(), tmp_path, "nocuda")
    with pytest.raises(UsageError, match="CUDA is not available"):
        load_model(path, device="cuda")
