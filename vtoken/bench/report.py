"""Benchmark outputs: results.json, results.csv, summary.md (plots are in plots.py), and the
BD-rates between the RD curves (curves.py)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from statistics import median

from .. import defaults
from ..metrics.registry import METRICS
from .curves import curves

BD_METRICS = ("lpips", "psnr_rgb")   # the BD tables; others are in results.json on request

CSV_COLUMNS = ["clip", "codec", "config", "quality_param", "quality", "bytes", "bpp", "frames", "width", "height",
               *METRICS, "encode_s", "decode_s", "encode_fps", "decode_fps", "encode_cpu_s", "decode_cpu_s", "encode_peak_rss_mib",
               "decode_peak_rss_mib", "encode_peak_gpu_mib", "decode_peak_gpu_mib", "device", "ffmpeg", "cached"]


def bd_pairs(series: list[str]) -> list[tuple[str, str]]:
    """(test, anchor) pairs to report: every vtoken series (vtoken, vtoken-t2, ...,
    vtoken-best) against every baseline when vtoken ran, else every other baseline against
    the first one (HEVC default when present)."""
    mine = [s for s in series if s == "vtoken" or s.startswith("vtoken-")]
    if mine:
        return [(t, s) for t in mine for s in series if s not in mine]
    if not series:
        return []
    anchor = "hevc" if "hevc" in series else series[0]
    return [(s, anchor) for s in series if s != anchor]


def bd_table(results: list[dict], metrics=BD_METRICS) -> list[dict]:
    """BD-rate (percent, negative = test saves bits) and BD-metric (test minus anchor at
    equal rate) per clip and pair, plus an 'overall' row per pair: the mean over the clips
    where it is defined (the usual per-sequence average), with how many clips that is."""
    from ..metrics.bdrate import bd_metric, bd_rate

    rows = []
    cv = curves(results)
    all_series = list(dict.fromkeys(s for per in cv.values() for s in per))
    for test, anchor in bd_pairs(all_series):
        for metric in metrics:
            higher = METRICS[metric][1]
            per_clip_rate, per_clip_metric = [], []
            for clip, per in cv.items():
                if test not in per or anchor not in per:
                    continue
                a, t = per[anchor], per[test]
                if any(metric not in r["metrics"] for r in a + t):
                    continue
                ar, am = [r["bpp"] for r in a], [r["metrics"][metric] for r in a]
                tr, tm = [r["bpp"] for r in t], [r["metrics"][metric] for r in t]
                br = bd_rate(ar, am, tr, tm, higher_is_better=higher)
                bm = bd_metric(ar, am, tr, tm)
                rows.append({"clip": clip, "test": test, "anchor": anchor, "metric": metric,
                             "bd_rate_pct": br.value, "bd_rate_note": br.reason,
                             "bd_metric": bm.value, "bd_metric_note": bm.reason})
                per_clip_rate.append(br.value)
                per_clip_metric.append(bm.value)
            if per_clip_rate:
                rows.append({"clip": "overall", "test": test, "anchor": anchor, "metric": metric,
                             **_mean_defined("bd_rate_pct", "bd_rate_note", per_clip_rate),
                             **_mean_defined("bd_metric", "bd_metric_note", per_clip_metric)})
    return rows


def _mean_defined(key: str, note_key: str, values: list) -> dict:
    ok = [v for v in values if v is not None]
    if not ok:
        return {key: None, note_key: "undefined on every clip"}
    note = None if len(ok) == len(values) else f"mean of the {len(ok)} of {len(values)} clips where defined"
    return {key: sum(ok) / len(ok), note_key: note}


def csv_rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        row = {k: r.get(k) for k in ("clip", "codec", "config", "quality_param", "quality", "bytes", "bpp",
                                     "frames", "width", "height", "device", "ffmpeg", "cached")}
        row.update({m: r["metrics"].get(m) for m in METRICS})
        row.update({k: r["timings"].get(k) for k in ("encode_s", "decode_s", "encode_fps", "decode_fps",
                                                     "encode_cpu_s", "decode_cpu_s")})
        row.update({k: r["memory"].get(k) for k in ("encode_peak_rss_mib", "decode_peak_rss_mib",
                                                    "encode_peak_gpu_mib", "decode_peak_gpu_mib")})
        rows.append(row)
    return rows


def write_csv(path: str | Path, results: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(results):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    Path(path).write_text(buf.getvalue())


def _json_safe(obj):
    """NaN/inf are not JSON: written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: str | Path, run: dict) -> None:
    Path(path).write_text(json.dumps(_json_safe(run), indent=1, sort_keys=False, allow_nan=False) + "\n")


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summary_markdown(run: dict) -> str:
    """The human-readable table of a run (what benchmarks/results/*/summary.md holds)."""
    env, st, results = run["environment"], run["settings"], run["results"]
    cv = curves(results)
    m = env.get("machine", {})
    lines = ["# vtoken benchmark", "",
             f"- date: {env.get('date')}; machine: {m.get('cpu')}, {m.get('cores')} cores, "
             f"{m.get('memory_gib')} GiB; GPU: {(env.get('gpu') or {}).get('name', 'none')}",
             f"- ffmpeg {env.get('ffmpeg')}; torch {env['versions'].get('torch')}; PyAV {env['versions'].get('av')}; "
             f"vtoken {env['versions'].get('vtoken')}",
             f"- {st['frames']} frames at {st['size'][0]}x{st['size'][1]}; threads {st['threads']}; "
             f"configs {', '.join(st['configs'])}; metrics on {st['metrics_device']}",
             "- bpp = bytes x 8 / (frames x W x H) of the coded elementary stream; metrics are per-frame means "
             "on RGB (BT.601 limited -> RGB, one conversion for all codecs); LPIPS lower is better.", ""]
    model = env.get("vtoken_model")
    if model:
        # Which weights made the vtoken curve: a results folder is only comparable with another
        # made by the same model (results.json also holds it per point).
        names = model if isinstance(model, list) else [model]
        chunk = st.get("vtoken_chunk_frames")  # absent in runs from before the option: 17
        refine = st.get("vtoken_refine")
        refine_auto = st.get("vtoken_refine_auto")  # absent in runs from before auto searched by default
        loss = st.get("vtoken_refine_loss")  # absent in runs from before the option: lpips
        searched = f"`--refine {refine_auto or refine}`"
        if loss and loss != defaults.REFINE_LOSS:
            searched += f" `--refine-loss {loss}`"
        method = st.get("vtoken_refine_method")  # absent in runs from before the flips: Adam's steps
        if method:
            searched += f", method {_names(method)}"
        arithmetic = st.get("vtoken_refine_precision")  # absent in runs from before the option: fp32
        if arithmetic:
            searched += f", in {_names(arithmetic)}"
        decoded = st.get("vtoken_decode_precision")  # absent in runs from before the option: fp32 on a CPU
        lines.append(f"- vtoken model {'; '.join(names)}, planes sweep {st.get('vtoken_planes')}"
                     + (f", chunks of {chunk} frames" if chunk else "")
                     + (f", decoded in {_names(decoded)}" if decoded else "")
                     + (f", the encoder's search on every point ({searched})" if refine else "")
                     + (f", the encoder's search on the vtoken-auto points ({searched}, vtoken encode's default "
                        "with `--temporal-factor auto`)" if refine_auto and not refine else "")
                     + (", plane maps on every point (`--plane-map`)" if st.get("vtoken_plane_map") else ""))
        other = {tf: planes for tf, planes in (st.get("vtoken_temporal_factors") or {}).items() if tf != "model"}
        if other:
            lines.append("- vtoken at other temporal factors (series vtoken-t<f>; finer than the model's: every frame "
                         "coded more than once; coarser: every 2nd-8th frame coded, the others blended): "
                         + "; ".join(f"{tf}: planes {planes or st.get('vtoken_planes')}" for tf, planes in other.items())
                         + ". vtoken-best: per clip, the vtoken points of any factor on the LPIPS-rate front "
                         "that no other factor's curve beats between its points (an encoder choosing its time "
                         "grid per clip and rate by LPIPS)")
        if st.get("vtoken_bpp_targets"):
            lines.append(f"- vtoken-auto: `vtoken encode --bpp X --temporal-factor auto` at X = "
                         f"{', '.join(f'{b:g}' for b in st['vtoken_bpp_targets'])} bpp: the encoder codes the first "
                         "chunk on the grids the chunk allows (coarsest first, until one plane is over the target), "
                         "keeps the one with the lowest LPIPS at the target (where that grid's every plane is under "
                         "the target, also tried in shorter key chunks) and spends the target group by group, "
                         "a key chunk with the chunks after it (what a user gets without hindsight; the grid and "
                         "key chunks it chose are in the points table)")
    for sp in st.get("baselines", []):
        lines.append(f"- {sp['codec']} {sp['config']}: {sp['encoder']} preset {sp['preset']}, {sp['structure']}, "
                     f"{sp['gop']}, {sp['bit_depth']}-bit, {sp['quality_param']} sweep "
                     f"{st['qualities'].get(sp['codec'])}")
    cached = sum(1 for r in results if r.get("cached"))
    if cached:
        on = {json.dumps(r.get("measured_on"), sort_keys=True) for r in results if r.get("cached")}
        lines.append(f"- {cached} baseline points came from the cache (measured on: {'; '.join(sorted(on))})")
    lines += ["", "## Ranges and speed", "",
              "Medians over each sweep. fps = frames / wall-clock seconds of the encoder or decoder process (vtoken: of the library call); "
              "CPU f/s = frames / CPU seconds (user + system, all threads), which is less sensitive to other load on the machine.", "",
              "| clip | codec | points | bpp | PSNR RGB (dB) | LPIPS | enc fps | dec fps | enc CPU f/s | dec CPU f/s | peak RSS enc/dec (MiB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for clip, per in cv.items():
        for name, recs in per.items():
            b = [r["bpp"] for r in recs]
            p = [r["metrics"].get("psnr_rgb") for r in recs if r["metrics"].get("psnr_rgb") is not None]
            lp = [r["metrics"].get("lpips") for r in recs if r["metrics"].get("lpips") is not None]
            ef = [r["timings"]["encode_fps"] for r in recs if r["timings"].get("encode_fps")]
            df = [r["timings"]["decode_fps"] for r in recs if r["timings"].get("decode_fps")]
            ec = [r["frames"] / r["timings"]["encode_cpu_s"] for r in recs if r["timings"].get("encode_cpu_s")]
            dc = [r["frames"] / r["timings"]["decode_cpu_s"] for r in recs if r["timings"].get("decode_cpu_s")]
            er = [r["memory"]["encode_peak_rss_mib"] for r in recs if r["memory"].get("encode_peak_rss_mib")]
            dr = [r["memory"]["decode_peak_rss_mib"] for r in recs if r["memory"].get("decode_peak_rss_mib")]
            lines.append(
                f"| {clip} | {name} | {len(recs)} | {min(b):.4f}-{max(b):.4f} | "
                f"{_fmt(min(p) if p else None, 2)}-{_fmt(max(p) if p else None, 2)} | "
                f"{_fmt(min(lp) if lp else None, 4)}-{_fmt(max(lp) if lp else None, 4)} | "
                f"{_fmt(median(ef) if ef else None, 1)} | {_fmt(median(df) if df else None, 1)} | "
                f"{_fmt(median(ec) if ec else None, 1)} | {_fmt(median(dc) if dc else None, 1)} | "
                f"{_fmt(max(er) if er else None, 0)}/{_fmt(max(dr) if dr else None, 0)} |")
    gpu = [r for r in results if r["memory"].get("encode_peak_gpu_mib") is not None]
    if gpu:
        lines.append("")
        lines.append(f"Peak GPU memory (vtoken): encode {max(r['memory']['encode_peak_gpu_mib'] for r in gpu):.0f} MiB, "
                     f"decode {max(r['memory']['decode_peak_gpu_mib'] or 0 for r in gpu):.0f} MiB.")
    rows = bd_table(results) if len(cv) else []
    if rows:
        lines += ["", "## BD-rate (percent of bits, negative = test needs fewer) and BD-metric (test - anchor at equal rate)", "",
                  "| clip | test | anchor | metric | BD-rate % | BD-metric | note |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            note = "; ".join(n for n in (r["bd_rate_note"], r["bd_metric_note"]) if n)
            lines.append(f"| {r['clip']} | {r['test']} | {r['anchor']} | {r['metric']} | {_fmt(r['bd_rate_pct'], 1)} | "
                         f"{_fmt(r['bd_metric'], 4)} | {note} |")
    if run.get("pictures"):
        lines += ["", "## Side by side (source | vtoken | x265 at the nearest rate; a crop at full size)", ""]
        lines += [f"![{Path(name).stem}](pictures/{name})" for name in run["pictures"]]
    lines += ["", "## Points", "",
              "| clip | codec | q | bytes | bpp | PSNR RGB | PSNR Y | MS-SSIM | LPIPS | enc fps | dec fps |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    run_chunk = st.get("vtoken_chunk_frames")
    for clip, per in cv.items():
        for name, recs in per.items():
            for r in recs:
                mm, tt = r["metrics"], r["timings"]
                lines.append(f"| {clip} | {name} | {_quality_cell(r, run_chunk)} | {r['bytes']} | {r['bpp']:.4f} | "
                             f"{_fmt(mm.get('psnr_rgb'), 2)} | {_fmt(mm.get('psnr_y'), 2)} | {_fmt(mm.get('ms_ssim'), 4)} | "
                             f"{_fmt(mm.get('lpips'), 4)} | {_fmt(tt.get('encode_fps'), 1)} | {_fmt(tt.get('decode_fps'), 1)} |")
    return "\n".join(lines) + "\n"


def _quality_cell(rec: dict, chunk_frames: int | None = None) -> str:
    """'crf 30', 'planes 18'; a rate target with the grid and planes per chunk it was coded at,
    and the key chunks auto chose where they are not the run's `chunk_frames` (factor_choice)."""
    cell = f"{rec['quality_param']} {rec['quality']:g}"
    st = rec.get("settings", {})
    if rec["quality_param"] == "bpp_target" and "temporal_factor" in st:
        spacing = st.get("chunk_frames")
        keys = (f", {spacing}-frame key chunks" if chunk_frames and spacing and spacing != chunk_frames
                and st.get("key_interval") == 1 else "")
        cell += f" (grid {st['temporal_factor']}{keys}, planes {st.get('planes')})"
    return cell


def write_outputs(run: dict, out_dir: str | Path, plots: bool = True) -> list[Path]:
    """results.json, results.csv, summary.md and (with `plots`) rd_lpips.png, rd_psnr.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = dict(run)
    run["bd"] = bd_table(run["results"]) if run["results"] else []
    paths = [out / "results.json", out / "results.csv", out / "summary.md"]
    write_json(paths[0], run)
    write_csv(paths[1], run["results"])
    paths[2].write_text(summary_markdown(run))
    paths += [out / "pictures" / name for name in run.get("pictures", [])]
    if plots:
        from .plots import rd_plot
        for metric, name in (("lpips", "rd_lpips.png"), ("psnr_rgb", "rd_psnr.png")):
            p = out / name
            if rd_plot(run["results"], metric, p):
                paths.append(p)
    return paths


def _names(value: str | list[str]) -> str:
    """A run setting that is one name, or several (runner._one_or_each), as words."""
    return value if isinstance(value, str) else " and ".join(value)
