"""The configuration reference is generated from the schema and must not drift from it."""

from __future__ import annotations

from mailstead.config.docs import DOC_PATH, render_reference
from mailstead.config.schema import Settings


def test_committed_reference_matches_the_schema() -> None:
    committed = DOC_PATH.read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/configuration.md is out of date: run `python -m mailstead.config.docs`"
    )


def test_every_key_is_documented_with_a_description() -> None:
    text = render_reference()

    def walk(model: type, prefix: str) -> None:
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            annotation = info.annotation
            if hasattr(annotation, "model_fields"):
                if name != "listeners":  # only holds sub-tables, so it has no heading
                    assert f"## `[{prefix}{name}]`" in text
                walk(annotation, f"{prefix}{name}.")
            else:
                assert info.description, f"{prefix}{name} has no description"
                assert f"| `{name}` |" in text

    walk(Settings, "")
