"""The memoised address-list parser hands out fresh lists and caches only short values."""

from __future__ import annotations

from mailstead.mime import rfc822


def test_results_are_fresh_lists_of_shared_immutable_addresses() -> None:
    first = rfc822.parse_addresses("Ann <ann@example.org>, bob@example.org")
    first.append(rfc822.Address(None, None, "x", "y"))  # a caller extending its list
    second = rfc822.parse_addresses("Ann <ann@example.org>, bob@example.org")
    assert [(a.name, a.mailbox, a.host) for a in second] == [
        ("Ann", "ann", "example.org"), (None, "bob", "example.org")
    ]


def test_long_values_are_parsed_but_not_cached() -> None:
    value = ", ".join(f"user{n}@example.org" for n in range(100))
    assert len(value) > rfc822._CACHED_VALUE_LIMIT
    before = rfc822._parse_addresses_cached.cache_info().currsize
    assert len(rfc822.parse_addresses(value)) == 100
    assert rfc822._parse_addresses_cached.cache_info().currsize == before
