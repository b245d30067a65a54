"""The cache of Email properties made from bodies (http/jmap/mail/emails.py)."""

from __future__ import annotations

from mailstead.http.jmap.mail.emails import PropertyCache


def test_a_body_s_properties_come_back_only_when_all_are_known() -> None:
    cache = PropertyCache(max_bodies=2)
    cache.put("a", {"subject": "Hi", "preview": "Hello"})
    assert cache.get("a", ["subject"]) == {"subject": "Hi"}
    assert cache.get("a", ["subject", "from"]) is None  # one missing: read the body
    cache.put("a", {"from": None})
    assert cache.get("a", ["subject", "from"]) == {"subject": "Hi", "from": None}


def test_the_least_recently_used_body_goes_first() -> None:
    cache = PropertyCache(max_bodies=2)
    cache.put("a", {"subject": "A"})
    cache.put("b", {"subject": "B"})
    assert cache.get("a", ["subject"]) is not None  # a is now the most recent
    cache.put("c", {"subject": "C"})
    assert cache.get("b", ["subject"]) is None
    assert cache.get("a", ["subject"]) == {"subject": "A"}
    assert cache.get("c", ["subject"]) == {"subject": "C"}
