"""RD curves of a benchmark run: records grouped per clip and series (codec + config), sorted
by rate. Shared by the reports and the plots.

A run that swept vtoken at several temporal factors (series vtoken, vtoken-t2, vtoken-t1)
also gets a derived series, vtoken-best: per clip, the vtoken points of any factor on the
LPIPS-rate Pareto front (none cheaper is as good). It is what an encoder gets that picks
its time grid per clip and rate by LPIPS, as a multi-pass encoder with vtoken's own LPIPS
could; the points are measured ones, only the choice among them is made here."""

from __future__ import annotations


def series_name(rec: dict) -> str:
    """'hevc' for a codec's default config, 'hevc-lowdelay' otherwise ('vtoken' as is)."""
    return rec["codec"] if rec["config"] == "default" else f"{rec['codec']}-{rec['config']}"


BEST = "vtoken-best"


def curves(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """{clip: {series: records sorted by bpp}} in first-seen order, with vtoken-best where a
    clip has more than one vtoken series."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        out.setdefault(r["clip"], {}).setdefault(series_name(r), []).append(r)
    for per_clip in out.values():
        for recs in per_clip.values():
            recs.sort(key=lambda r: r["bpp"])
        mine = [name for name, recs in per_clip.items() if recs[0]["codec"] == "vtoken"]
        if len(mine) > 1:
            per_clip[BEST] = pareto_front([r for name in mine for r in per_clip[name]], "lpips")
    return out


def pareto_front(records: list[dict], metric: str) -> list[dict]:
    """The records no cheaper record matches or beats on `metric` (lower is better), by bpp,
    each as a copy with config "best" (so it plots and reports as its own series)."""
    front, best = [], float("inf")
    for r in sorted(records, key=lambda r: (r["bpp"], r["metrics"].get(metric, float("inf")))):
        value = r["metrics"].get(metric)
        if value is not None and value < best:
            front.append({**r, "config": "best"})
            best = value
    return front
