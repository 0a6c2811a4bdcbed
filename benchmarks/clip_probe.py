"""What the clip probes (temporal_auto.py, sharpen_probe.py, spatial_probe.py, coder_replay.py,
rate_groups.py) share: their clip and device arguments, the clips' frames, the results'
header and file, and one clip coded, decoded and scored with LPIPS (auto_pruning.py takes the
file's writing). Not a script: they import it (it lives beside them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the arguments every probe takes: clips (CLIP or NAME=CLIP), --names,
    --device and --out."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("clips", nargs="+", help="CLIP or NAME=CLIP")
    ap.add_argument("--names", help="comma-separated names of the clips for the table (default: NAME= or file names)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    return ap


def named_clips(ap: argparse.ArgumentParser, args) -> list[tuple[str, Path]]:
    """(name, path) per clip, named by --names, else by NAME=, else by the file's stem."""
    specs = [spec.rpartition("=") for spec in args.clips]
    clips = [(name or Path(path).stem, Path(path)) for name, _, path in specs]
    if args.names:
        names = args.names.split(",")
        if len(names) != len(clips):
            ap.error(f"{len(names)} names for {len(clips)} clips")
        clips = [(name, path) for name, (_, path) in zip(names, clips)]
    return clips


def header(title: str, script: str, argv, device: str, setup: str) -> list[str]:
    """The results' first lines: title, the command as run, the machine and the set-up."""
    from vtoken.bench.env import machine

    m = machine()
    return [f"# {title}", "", f"- command: `python benchmarks/{script} {' '.join(argv or sys.argv[1:])}`",
            f"- machine: {m['cpu']}, {m['cores']} cores; device {device}; {setup}"]


def finish(lines: list[str], out: Path | None) -> int:
    """The results' lines written to `out` (when given) and printed; the script's exit status."""
    text = "\n".join(lines) + "\n"
    if out:
        out.write_text(text)
    print(text)
    return 0


def frames(path: Path):
    """All the clip's frames, uint8 [T, H, W, 3]."""
    import numpy as np

    from vtoken.media import VideoReader

    with VideoReader(path) as reader:
        return np.concatenate(list(reader.chunks(64)))


def coded(clip: Path, ref, out: Path, device: str, model=None, **encode):
    """`clip` encoded into `out` with these options, decoded: (EncodeResult, decoded frames
    [: len(ref)], their mean LPIPS against `ref`)."""
    import numpy as np

    import vtoken
    from vtoken.metrics.lpips import lpips_frames

    res = vtoken.encode(clip, out, model=model, device=device, overwrite=True, **encode)
    dec = np.concatenate(list(vtoken.decode_frames(out, model=model, device=device)))[: len(ref)]
    return res, dec, float(lpips_frames(ref, dec, device).mean())
