"""benchmarks/auto_pruning.py: recorded auto trials replayed with the stop past the best grid."""

from __future__ import annotations

import json

from scripts import load_benchmark


def _auto(clip, target, trials):
    return {"codec": "vtoken", "config": "auto", "clip": clip, "quality": target,
            "settings": {"factor_trials": [dict(factor=f, bpp=b, lpips=l, planes=p, at_target=a)
                                           for f, b, l, p, a in trials]}}


def test_replay_counts_what_the_rule_skips_and_what_it_changes(tmp_path, capsys):
    script = load_benchmark("auto_pruning")
    results = {"results": [
        # One minimum: the rule stops at 4 (worse than 8) and still chooses 8.
        _auto("a", 0.01, [(16, 0.010, 0.40, 9, None), (8, 0.010, 0.35, 6, None), (4, 0.010, 0.37, 4, None),
                          (2, 0.010, 0.36, 2, None), (1, 0.010, 0.38, 1, None)]),
        # Two minima: all trials chose 2, the rule stops at 8 and keeps 16.
        _auto("b", 0.01, [(16, 0.010, 0.30, 9, None), (8, 0.010, 0.31, 6, None), (4, 0.010, 0.32, 4, None),
                          (2, 0.010, 0.20, 2, None)]),
        {"codec": "hevc", "config": "default", "clip": "a", "quality": 30, "settings": {}},
    ]}
    # A shorter key spacing tried after the grids (factor_choice._denser_keys) is not a grid's trial.
    spaced = _auto("c", 0.1, [(8, 0.05, 0.30, 64, None), (4, 0.07, 0.25, 64, None)])
    spaced["settings"]["factor_trials"].append(dict(factor=4, bpp=0.09, lpips=0.24, planes=64, at_target=None,
                                                    chunk_frames=17, key_interval=1))
    results["results"].append(spaced)
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    assert script.main([str(path), "--out", str(tmp_path / "out.md")]) == 0
    text = (tmp_path / "out.md").read_text()
    assert "| run | a | 0.01 | 8 | 8 | 3 / 5 |" in text
    assert "| run | b | 0.01 | 2 | 16 | 2 / 4 |" in text
    assert "| run | c | 0.1 | 4 | 4 | 2 / 2 |" in text
    assert "3 decisions: 1 changed by the rule; 4 of 11 trials skipped." in text
    assert text in capsys.readouterr().out
