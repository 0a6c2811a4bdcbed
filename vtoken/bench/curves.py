"""RD curves of a benchmark run: records grouped per clip and series (codec + config), sorted
by rate. Shared by the reports and the plots.

A run that swept vtoken at several temporal factors (series vtoken, vtoken-t2, vtoken-t1)
also gets a derived series, vtoken-best: per clip, the vtoken points of any factor on the
LPIPS-rate Pareto front (none cheaper is as good) that no other factor's curve beats where
it is read between its points (the interpolation the BD figures use: a plane count between
two swept ones gives a point between them). It is what an encoder gets that picks its time
grid per clip and rate by LPIPS, as a multi-pass encoder with vtoken's own LPIPS could; the
points are measured ones, only the choice among them is made here. Without the second rule a
point only just cheaper than the next one of another grid, but far above its grid's curve,
would stay on the front and pull the BD-rate the wrong way (a front with more choices
scoring worse than one of its series alone). The front is over the plane sweeps only: series
vtoken-auto (rate targets with `--temporal-factor auto`, the encoder choosing by itself) stays
apart, as what a user gets without hindsight."""

from __future__ import annotations


def series_name(rec: dict) -> str:
    """'hevc' for a codec's default config, 'hevc-lowdelay' otherwise ('vtoken' as is)."""
    return rec["codec"] if rec["config"] == "default" else f"{rec['codec']}-{rec['config']}"


BEST = "vtoken-best"
# The config of vtoken-auto's records, and `vtoken encode --temporal-factor auto`
# (vtoken.codec.factor_choice.AUTO, not imported: that package loads torch).
AUTO = "auto"


def curves(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """{clip: {series: records sorted by bpp}} in first-seen order, with vtoken-best where a
    clip has more than one vtoken plane sweep."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        out.setdefault(r["clip"], {}).setdefault(series_name(r), []).append(r)
    for per_clip in out.values():
        for recs in per_clip.values():
            recs.sort(key=lambda r: r["bpp"])
        mine = [name for name, recs in per_clip.items() if recs[0]["codec"] == "vtoken" and recs[0]["config"] != AUTO]
        if len(mine) > 1:
            runs = [(per_clip[name], _rate_reader(per_clip[name], "lpips")) for name in mine]
            front = _front([r for recs, _ in runs for r in recs], "lpips")
            per_clip[BEST] = [{**r, "config": "best"} for r in front if not beaten_between_points(r, runs, "lpips")]
    return out


def _rate_reader(records: list[dict], metric: str):
    """bpp as a function of `metric` (lower is better) along the records' Pareto front, read
    between its points as bd_rate does (monotone cubic in log10 rate over the metric); None
    outside the front's range (no extrapolation) or for a front of fewer than two points."""
    import numpy as np
    from scipy.interpolate import PchipInterpolator

    front = _front(records, metric)
    if len(front) < 2:
        return lambda value: None
    q = np.array([r["metrics"][metric] for r in front])[::-1]  # ascending
    curve = PchipInterpolator(q, np.log10([r["bpp"] for r in front])[::-1])
    return lambda value: 10 ** float(curve(value)) if q[0] <= value <= q[-1] else None


def beaten_between_points(rec: dict, series: list[tuple[list[dict], object]], metric: str) -> bool:
    """True when a series (records, _rate_reader of them) that `rec` is not part of reaches
    `rec`'s `metric` at a lower rate."""
    value = rec["metrics"].get(metric)
    if value is None:
        return False
    for recs, rate_at in series:
        if all(r is not rec for r in recs):
            rate = rate_at(value)
            if rate is not None and rate < rec["bpp"]:
                return True
    return False


def pareto_front(records: list[dict], metric: str) -> list[dict]:
    """The records no cheaper record matches or beats on `metric` (lower is better), by bpp,
    each as a copy with config "best" (so it plots and reports as its own series)."""
    return [{**r, "config": "best"} for r in _front(records, metric)]


def _front(records: list[dict], metric: str) -> list[dict]:
    """The records themselves that pareto_front keeps, by bpp."""
    front, best = [], float("inf")
    for r in sorted(records, key=lambda r: (r["bpp"], r["metrics"].get(metric, float("inf")))):
        value = r["metrics"].get(metric)
        if value is not None and value < best:
            front.append(r)
            best = value
    return front
