"""engine/style_cache.py: the least recently used value goes first, and only misses compute.
(How stylize keys its Grams in it: tests/test_transfer.py.)"""

from batch_nst.engine.style_cache import StyleCache


def test_a_hit_computes_nothing_and_the_least_recently_used_goes_first():
    cache, computed = StyleCache(capacity=2), []

    def value(key):
        return lambda: computed.append(key) or key.upper()

    assert [cache.get(k, value(k)) for k in ("a", "b", "a")] == ["A", "B", "A"]
    assert computed == ["a", "b"] and cache.misses == 2
    cache.get("c", value("c"))  # full: "b", used before "a", goes
    cache.get("a", value("a"))
    cache.get("b", value("b"))
    assert computed == ["a", "b", "c", "b"] and cache.misses == 4
