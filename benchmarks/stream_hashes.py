"""Fingerprints of .mvt files for the cross-machine check: a stream encoded on the GPU
machine must decode to the same bits on any CPU. Prints one JSON line per file:

    python benchmarks/stream_hashes.py out/*.mvt

`sha256` is the file's; `bits_sha256` hashes the entropy-decoded bit-planes of every chunk in
order (uint8, [planes, T', H', W'] per chunk), which is what the tokenizer's decoder receives.
Run it on both machines: equal `bits_sha256` means bit-exact decoding. Needs the model the
file names (for its entropy prior), not a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def fingerprint(path: Path) -> dict:
    from vtoken.bitstream import open_mvt
    from vtoken.codec import Codec
    from vtoken.models import load_model_by_identity

    data = path.read_bytes()
    bits_hash = hashlib.sha256()
    planes = []
    with open_mvt(path) as reader:
        h = reader.header
        codec = Codec(load_model_by_identity(h.model_name, h.sha256_hex, device="cpu"), "cpu")
        for _, bits in codec.entropy_bits(reader):
            bits_hash.update(bits.astype("uint8").tobytes())
            planes.append(len(bits))
    return {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "bits_sha256": bits_hash.hexdigest(), "chunks": len(planes), "planes": planes,
            "model": f"{h.model_name} {h.sha256_hex[:16]}", "size": f"{h.width}x{h.height}",
            "frames": sum(e.frame_count for e in reader.entries)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for path in args.files:
        print(json.dumps(fingerprint(path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
