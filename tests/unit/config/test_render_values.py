"""Values the renderer writes must read back as the same values."""

from __future__ import annotations

import tomllib

import pytest

from mailstead.config.render import toml_value


@pytest.mark.parametrize("value", [
    {"example.org": "mx.example.net:2525", 'odd"key': "v", "ünï.test": "[::1]:25"},
    {},
    ["a", "b"],
    {"nested": {"k": 1}},
])
def test_rendered_values_round_trip(value: object) -> None:
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value
