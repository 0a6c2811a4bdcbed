"""The weight store: save and load tokenizers as `<name>-<sha8>.safetensors` + `.json`.

A model is identified by its name and the sha256 of its safetensors file (the entropy prior
lives inside that file, so the hash covers it). Loading uses safetensors only, never pickle,
and refuses weights whose hash differs from the one in the JSON.

Search order for names: the folders in VTOKEN_MODEL_PATH (os.pathsep-separated), then the
shipped zoo `vtoken/models/zoo/`. The default model is the zoo entry named in
`zoo/DEFAULT`, else the only model in the zoo."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ..device import resolve_device
from ..errors import ModelError, UsageError
from ..fsutil import atomic_path
from .config import TokenizerConfig
from .identity import ModelIdentity
from .tokenizer import Tokenizer

FORMAT = "vtoken-model"
FORMAT_VERSION = 1
PRIOR_KEY = "entropy.prior"
CROSSPLANE_KEYS = ("entropy.crossplane.weight", "entropy.crossplane.bias", "entropy.crossplane.neighbour_weight")
ZOO_DIR = Path(__file__).resolve().parent / "zoo"
ENV_VAR = "VTOKEN_MODEL_PATH"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")

_cache: dict[tuple, Tokenizer] = {}
_cache_lock = threading.Lock()


def search_dirs() -> list[Path]:
    """Folders searched for models, in order."""
    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return dirs + [ZOO_DIR]


# -- saving -------------------------------------------------------------------------------------
def save_model(
    model: Tokenizer,
    out_dir: str | os.PathLike,
    name: str,
    entropy_prior: Any = None,
    *,
    entropy_predictor: Any = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `<name>-<sha8>.safetensors` (weights, plus the integer `entropy.prior` and the
    cross-plane predictor's integer weights if given) and `<name>-<sha8>.json`; return the
    JSON path. `dtype` (e.g. torch.float16) casts floating
    weights to make the file smaller; they are cast back to the model's dtype on load."""
    if not _NAME.match(name):
        raise UsageError(
            f"model name {name!r} is not allowed: use letters, digits and . _ + - (starting with a letter or digit)"
        )
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"cannot save model: folder {out_dir} does not exist")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous().clone()
    if entropy_prior is not None:
        prior = np.asarray(entropy_prior)
        # An integer prior keeps its width (export stores int16 counts); anything else is int64.
        prior = prior if prior.dtype in (np.int16, np.int32, np.int64) else prior.astype(np.int64)
        tensors[PRIOR_KEY] = torch.from_numpy(np.ascontiguousarray(prior))
    if entropy_predictor is not None:
        parts = (entropy_predictor.weight, entropy_predictor.bias, entropy_predictor.neighbour_weight)
        for key, value in zip(CROSSPLANE_KEYS, parts):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value.astype(np.int32)))
    config = model.config.to_dict()
    # One metadata key only: safetensors writes several keys in a random (hash map) order,
    # which would make the sha256 of identical weights differ between saves.
    metadata = {"vtoken": json.dumps({"format": FORMAT, "name": name, "config": config}, sort_keys=True)}
    data = save_safetensors_bytes(tensors, metadata=metadata)
    sha = hashlib.sha256(data).hexdigest()
    stem = f"{name}-{sha[:8]}"
    weights = out_dir / f"{stem}.safetensors"
    with atomic_path(weights, overwrite=True) as tmp:
        tmp.write_bytes(data)
    descriptor = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "sha256": sha,
        "weights": weights.name,
        "config": config,
    }
    json_path = out_dir / f"{stem}.json"
    with atomic_path(json_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(descriptor, indent=2, sort_keys=True) + "\n")
    return json_path


# -- finding ------------------------------------------------------------------------------------
def _read_descriptor(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read model descriptor {path}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not a vtoken model descriptor (format must be {FORMAT!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format version {meta.get('version')}; this vtoken reads version {FORMAT_VERSION}: upgrade vtoken"
        )
    for key in ("name", "sha256", "weights", "config"):
        if key not in meta:
            raise ModelError(f"model descriptor {path} lacks {key!r}")
    weights = str(meta["weights"])
    # The weights must sit beside the JSON: a descriptor cannot point elsewhere on disk.
    if Path(weights).name != weights or weights in (".", ".."):
        raise ModelError(f"model descriptor {path} names weights {weights!r}; only a file name beside it is allowed")
    return meta


def _descriptors() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable model descriptor in the search folders (unreadable ones skipped)."""
    seen: set[Path] = set()
    for folder in search_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                yield path, _read_descriptor(path)
            except ModelError:
                continue


def available_models() -> list[tuple[ModelIdentity, Path]]:
    """(identity, JSON path) of every model found, search order."""
    return [(ModelIdentity(m["name"], m["sha256"]), p) for p, m in _descriptors()]


def find_model(name: str, sha256: str) -> Path | None:
    """JSON path of the model with this name and sha256 (a prefix of 8+ hex digits is
    accepted), or None."""
    sha256 = sha256.lower()
    if len(sha256) < 8:
        return None
    for path, meta in _descriptors():
        if meta["name"] == name and str(meta["sha256"]).lower().startswith(sha256):
            return path
    return None


def _default_descriptor() -> Path:
    marker = ZOO_DIR / "DEFAULT"
    if marker.is_file():
        spec = marker.read_text().strip()
        matches = [p for p, m in _descriptors() if p.parent.resolve() == ZOO_DIR and _matches(spec, p, m)]
        if len(matches) != 1:
            raise ModelError(f"{marker} names model {spec!r} but the zoo has {len(matches)} models matching it; reinstall vtoken")
        return matches[0]
    found = sorted(ZOO_DIR.glob("*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelError(
            f"no default model: {ZOO_DIR} has none; run `make install`, or pass a model name or path "
            f"(or add a folder to {ENV_VAR})"
        )
    raise ModelError(f"{ZOO_DIR} holds {len(found)} models and no DEFAULT file; pass a model name")


def _matches(spec: str, path: Path, meta: dict[str, Any]) -> bool:
    return spec in (meta["name"], path.stem, f"{meta['name']}-{str(meta['sha256'])[:8]}")


def resolve_model(spec: str | os.PathLike | None = None) -> Path:
    """The JSON descriptor for `spec`: None (default model), a name, `name-sha8`, or a path
    to a .json or .safetensors file."""
    if spec is None:
        return _default_descriptor()
    text = os.fspath(spec)
    path = Path(text)
    if isinstance(spec, os.PathLike) or path.suffix in (".json", ".safetensors") or os.sep in text or path.is_file():
        if path.suffix == ".safetensors":
            path = path.with_suffix(".json")
        if not path.is_file():
            raise ModelError(f"model descriptor {path} not found (a model is a .json next to its .safetensors)")
        return path
    matches = [(p, m) for p, m in _descriptors() if _matches(text, p, m)]
    shas = {m["sha256"] for _, m in matches}
    if not matches:
        known = sorted({ModelIdentity(m["name"], m["sha256"]).short for _, m in _descriptors()})
        raise ModelError(
            f"model {text!r} not found in {', '.join(map(str, search_dirs()))}; known models: "
            f"{', '.join(known) or 'none'}"
        )
    if len(shas) > 1:
        names = sorted(ModelIdentity(m["name"], m["sha256"]).short for _, m in matches)
        raise ModelError(f"model name {text!r} is ambiguous ({', '.join(names)}); pass name-sha8")
    return matches[0][0]


def model_identity(spec: str | os.PathLike | None = None) -> ModelIdentity:
    """The name and weights hash of the model `spec` names (as resolve_model), without loading it."""
    meta = _read_descriptor(resolve_model(spec))
    return ModelIdentity(meta["name"], meta["sha256"])


# -- loading ------------------------------------------------------------------------------------
def load_model(spec: str | os.PathLike | None = None, device: str | torch.device = "cpu", *, cache: bool = True) -> Tokenizer:
    """Load a tokenizer in eval mode, its sha256 checked. Cached per (file, device): repeated
    calls return the same object, so don't train it in place (pass cache=False for a copy)."""
    from ..validate import device_name, model_spec

    model_spec(spec)
    if isinstance(device, str):
        device_name(device)
    json_path = resolve_model(spec).resolve()
    meta = _read_descriptor(json_path)
    weights = json_path.parent / meta["weights"]
    try:
        st = weights.stat()
    except OSError as exc:
        raise ModelError(f"weights {weights} of model {meta['name']} not found: {exc.strerror}") from exc
    device = resolve_device(device)
    key = (str(json_path), json_path.stat().st_mtime_ns, st.st_mtime_ns, st.st_size, str(device))
    if cache:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
    model = _load(meta, weights, device)
    if cache:
        with _cache_lock:
            _cache[key] = model
    return model


def _load(meta: dict[str, Any], weights: Path, device: torch.device) -> Tokenizer:
    data = weights.read_bytes()  # hashed and parsed from the same bytes: no swap in between
    sha = hashlib.sha256(data).hexdigest()
    if sha != str(meta["sha256"]).lower():
        raise ModelError(
            f"weights {weights} do not match model {meta['name']}: sha256 is {sha[:16]}..., the descriptor says "
            f"{str(meta['sha256'])[:16]}...; the file is damaged or replaced: reinstall the model"
        )
    try:
        config = TokenizerConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {meta['name']} has an invalid config: {exc}") from exc
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise ModelError(f"weights {weights} are not a valid safetensors file: {exc}") from exc
    prior = tensors.pop(PRIOR_KEY, None)
    crossplane = [tensors.pop(key, None) for key in CROSSPLANE_KEYS]
    model = Tokenizer(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights {weights} do not fit the config of model {meta['name']}: {str(exc).splitlines()[0]}") from exc
    model.to(device).eval()
    model.identity = ModelIdentity(str(meta["name"]), sha)
    model.entropy_prior = prior.numpy().astype(np.int64) if prior is not None else None
    model.entropy_predictor = None
    if any(t is not None for t in crossplane):
        if any(t is None for t in crossplane):
            raise ModelError(f"weights {weights} hold part of a cross-plane predictor")
        from ..entropy.crossplane import CrossPlanePredictor

        model.entropy_predictor = CrossPlanePredictor(*(t.numpy() for t in crossplane))
        if model.entropy_predictor.planes != config.bits:
            raise ModelError(f"model {meta['name']}: its cross-plane predictor is for "
                             f"{model.entropy_predictor.planes} planes, the model has {config.bits}")
    return model


def load_model_by_identity(name: str, sha256: str, device: str | torch.device = "cpu") -> Tokenizer:
    """The model a .mvt file names; ModelError saying how to install it when missing."""
    path = find_model(name, sha256)
    if path is None:
        raise ModelError(
            f"file was made with model {name} (sha256 {sha256[:16]}...); it is not installed: put its "
            f".json/.safetensors in {ENV_VAR}"
        )
    model = load_model(path, device)
    if not model.identity.sha256.startswith(sha256.lower()):
        raise ModelError(f"model {path} does not have sha256 {sha256[:16]}...; reinstall it")
    return model


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
