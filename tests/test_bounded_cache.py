"""The bounded map behind the parse, validation, label and token caches."""

from __future__ import annotations

from server.bounded_cache import BoundedCache


def test_it_holds_at_most_its_size_and_the_least_recently_used_leaves_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_putting_a_known_key_replaces_it_and_counts_as_use() -> None:
    cache: BoundedCache[str, list[int]] = BoundedCache(2)
    cache.put("a", [1])
    cache.put("b", [])
    cache.put("a", [9])
    cache.put("c", [3])
    assert cache.get("b") is None
    assert cache.get("a") == [9]
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is None
    assert len(cache) == 1
