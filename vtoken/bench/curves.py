"""RD curves of a benchmark run: records grouped per clip and series (codec + config), sorted
by rate. Shared by the reports and the plots."""

from __future__ import annotations


def series_name(rec: dict) -> str:
    """'hevc' for a codec's default config, 'hevc-lowdelay' otherwise ('vtoken' as is)."""
    return rec["codec"] if rec["config"] == "default" else f"{rec['codec']}-{rec['config']}"


def curves(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """{clip: {series: records sorted by bpp}} in first-seen order."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        out.setdefault(r["clip"], {}).setdefault(series_name(r), []).append(r)
    for per_clip in out.values():
        for recs in per_clip.values():
            recs.sort(key=lambda r: r["bpp"])
    return out
