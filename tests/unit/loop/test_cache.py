"""The step cache key and its explanations."""

from __future__ import annotations

from tidal.loop.cache import cache_key, code_version, environment, explain_miss


def _step_a() -> int:
    return 1


def _step_b() -> int:
    return 2


def test_key_changes_with_each_part() -> None:
    base = cache_key("train", "c1", {"params": {"max_iter": 200}, "train": "d1"})
    assert base == cache_key("train", "c1", {"train": "d1", "params": {"max_iter": 200}})  # order-free
    assert base != cache_key("train", "c2", {"params": {"max_iter": 200}, "train": "d1"})
    assert base != cache_key("train", "c1", {"params": {"max_iter": 300}, "train": "d1"})
    assert base != cache_key("train", "c1", {"params": {"max_iter": 200}, "train": "d2"})
    assert base != cache_key("evaluate", "c1", {"params": {"max_iter": 200}, "train": "d1"})


def test_code_version_follows_the_source() -> None:
    assert code_version(_step_a) != code_version(_step_b)
    assert code_version(_step_a) == code_version(_step_a)


def test_explanations_name_what_changed() -> None:
    env = environment()
    before = {"inputs": {"params": {"max_iter": 200}, "train": "a" * 64}, "env": env}
    now = {"inputs": {"params": {"max_iter": 300}, "train": "a" * 64}, "env": env}
    text = explain_miss(now, before, "c", "c")
    assert "params.max_iter: 200 → 300" in text and "train" not in text.replace("params", "")
    assert "code changed" in explain_miss(now, now, "c2", "c1")
    assert explain_miss(now, None, "c", None) == "ran: no earlier run of this step"
    changed_env = {**now, "env": {**env, "scikit-learn": "0.0"}}
    assert "environment scikit-learn" in explain_miss(changed_env, now, "c", "c")
