"""`schema.canonical_json` takes orjson's fast path only where its text is exactly the stdlib's (schema.md §3.3
defines canonical JSON as `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hypaware_tui.core.schema import canonical_json


def reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def outcome(fn, value: Any) -> tuple[str, str]:
    try:
        return "ok", fn(value)
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", type(exc).__name__


text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates and controls too
scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**66)
    | st.integers(min_value=-(2**66), max_value=-(2**62)) | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children)
    | st.dictionaries(text, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=1500, deadline=None)
@given(values)
def test_same_text_as_the_stdlib(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference, value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers() | text | st.booleans() | st.none(), st.integers(), max_size=5))
def test_non_string_keys_like_the_stdlib(value: dict) -> None:
    assert outcome(canonical_json, value) == outcome(reference, value)


def test_every_character_escapes_like_the_stdlib() -> None:
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or (cp > 0x3000 and cp % 97):
            continue
        ch = chr(cp)
        value = {ch: [ch, f"a{ch}b"]}
        assert canonical_json(value) == reference(value), hex(cp)


def test_cycles_and_deep_nesting_behave_as_before() -> None:
    loop: list = []
    loop.append(loop)
    loop.append(loop)
    assert outcome(canonical_json, loop) == outcome(reference, loop) == ("error", "ValueError")
    d: dict = {}
    d["x"] = d
    assert outcome(canonical_json, d) == ("error", "ValueError")
    deep: Any = 1
    for i in range(400):  # deeper than orjson encodes
        deep = [deep] if i % 2 else {"k": deep}
    assert canonical_json(deep) == reference(deep)


def test_subclasses_and_other_types_go_to_the_stdlib() -> None:
    class S(str):
        pass

    class I(int):  # noqa: E742
        def __repr__(self) -> str:
            return "I"

    for value in ({"a": S("x")}, [I(3)], {"a": (1, 2)}, {"k": 1.0, "z": 1e16}):
        assert canonical_json(value) == reference(value)
