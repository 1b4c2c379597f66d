"""Pairs manifests, pair lists and option values: hostile contents end in one-line errors.

Property-based (Hypothesis): whatever the JSON, CSV or number, the readers either return
something that satisfies their invariants or raise DonkeyError with a one-line message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donkey.cli.train_cmd import _check_numbers
from donkey.data.manifest import (
    MANIFEST_VERSION,
    Pair,
    check_pair_lengths,
    load_manifest,
)
from donkey.data.media import parse_count
from donkey.model.errors import DonkeyError
from donkey.runtime.batch import _read_pair_list

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

names = st.one_of(
    st.sampled_from(["a.gif", "b.gif", "sub/c.gif", "../x.gif", "/etc/passwd", "", "link.gif"]),
    st.text(max_size=12),
    st.integers(),
    st.none(),
)
indices = st.one_of(
    st.lists(st.integers(min_value=-3, max_value=12), max_size=6),
    st.lists(
        st.one_of(st.booleans(), st.floats(allow_subnormal=False), st.text(max_size=2)), max_size=3
    ),
    st.integers(),
    st.none(),
)
pair_items = st.one_of(
    st.fixed_dictionaries({"a": names, "b": names, "b_for_a": indices, "a_for_b": indices}),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=5),
)


@pytest.fixture()
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("root")
    (folder / "data").mkdir()
    outside = folder / "outside.gif"
    outside.write_bytes(b"x")
    (folder / "data" / "link.gif").symlink_to(outside)
    return folder


def one_line_error(exc: DonkeyError, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and text.startswith(str(path)), text


@SETTINGS
@given(items=st.lists(pair_items, max_size=3), root_value=st.one_of(st.just("data"), st.integers()))
def test_manifest_contents(root, items, root_value):
    path = root / "m.json"
    path.write_text(json.dumps({"version": MANIFEST_VERSION, "root": root_value, "pairs": items}))
    try:
        manifest = load_manifest(path)
    except DonkeyError as exc:
        one_line_error(exc, path)
        return
    base = (root / "data").resolve()
    for pair in manifest.pairs:
        for name in (pair.a, pair.b):
            assert base in (manifest.root / name).resolve().parents
        for mapping in (pair.b_for_a, pair.a_for_b):
            assert mapping and all(type(v) is int and v >= 0 for v in mapping)


def test_manifest_named_cases(root):
    path = root / "m.json"
    good = {"a": "a.gif", "b": "b.gif", "b_for_a": [0, 1], "a_for_b": [1, 0]}
    cases = [
        ({"a": "../outside.gif"}, "leaves the manifest root"),
        ({"a": "/etc/passwd"}, "leaves the manifest root"),
        ({"b": "link.gif"}, "resolves outside the manifest root"),
        ({"b_for_a": [0, "1"]}, "b_for_a [1] = '1' is not a frame index"),
        ({"a_for_b": [0, -1]}, "a_for_b [1] = -1 is not a frame index"),
        ({"a_for_b": [True]}, "a_for_b [0] = True is not a frame index"),
        ({"a_for_b": []}, "must be a non-empty list"),
        ({"score": "high"}, "score must be a number"),
        ({"extra": 1}, "pair 0 is malformed"),
    ]
    for change, message in cases:
        path.write_text(json.dumps({"version": 1, "root": "data", "pairs": [{**good, **change}]}))
        with pytest.raises(DonkeyError, match=re.escape(message)):
            load_manifest(path)
    path.write_bytes(b"\x00\x01binary\xff")
    with pytest.raises(DonkeyError, match="binary file, not a pairs manifest"):
        load_manifest(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DonkeyError, match="not UTF-8 text"):
        load_manifest(path)
    path.write_text("[" * 100_000)
    with pytest.raises(DonkeyError, match="not a readable pairs manifest"):
        load_manifest(path)


def test_mapping_ranges_against_the_videos():
    check_pair_lengths(Pair("a.gif", "b.gif", b_for_a=[0, 1, 3], a_for_b=[0, 1, 2, 2]), 3, 4)
    pair = Pair("a.gif", "b.gif", b_for_a=[0, 1, 4], a_for_b=[0, 1, 2, 2])
    with pytest.raises(DonkeyError, match="frame index out of range"):
        check_pair_lengths(pair, 3, 4)  # b has 4 frames, b_for_a asks for frame 4
    with pytest.raises(DonkeyError, match="do not match videos of 4/4 frames"):
        check_pair_lengths(pair, 4, 4)


@SETTINGS
@given(content=st.binary(max_size=200))
def test_pair_list_bytes(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("pl")
    for sub in ("s", "d"):
        (folder / sub).mkdir()
    (folder / "s" / "a.png").write_bytes(b"x")
    (folder / "d" / "x.gif").write_bytes(b"x")
    path = folder / "pairs.csv"
    path.write_bytes(content)
    try:
        pairs = _read_pair_list(path, folder / "s", folder / "d")
    except DonkeyError as exc:
        one_line_error(exc, path)
        return
    for s, d in pairs:
        assert (folder / "s").resolve() in s.resolve().parents
        assert (folder / "d").resolve() in d.resolve().parents


@SETTINGS
@given(
    threads=st.one_of(st.none(), st.integers(-5, 5)),
    batch=st.one_of(st.none(), st.integers(-5, 5)),
    workers=st.one_of(st.none(), st.integers(-5, 5)),
    steps=st.one_of(st.none(), st.integers(-5, 50)),
    until=st.one_of(st.none(), st.integers(-5, 50)),
    val=st.one_of(st.floats(-2, 2, allow_subnormal=False), st.just(float("nan"))),
)
def test_train_numbers(threads, batch, workers, steps, until, val):
    valid = (
        (threads is None or threads >= 0)
        and (batch is None or batch >= 1)
        and (workers is None or workers >= 0)
        and (steps is None or steps >= 1)
        and (until is None or until >= 1)
        and (until is None or steps is None or until <= steps)
        and 0 <= val < 1
    )
    try:
        _check_numbers(threads, batch, workers, steps, until, val)
    except DonkeyError as exc:
        assert not valid and "\n" not in str(exc) and str(exc).startswith("--")
    else:
        assert valid


@SETTINGS
@given(text=st.text(max_size=12))
def test_budget_numbers(text):
    try:
        value = parse_count(text, "--max-pixels")
    except DonkeyError as exc:
        assert str(exc).startswith("--max-pixels must be a positive number")
    else:
        assert value >= 1


def test_a_key_with_a_newline_stays_on_one_line(tmp_path):
    """Found by the property test above: the key used to reach the message unescaped."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "m.json"
    bad = {"version": MANIFEST_VERSION, "root": "data", "pairs": [{"\n": 0}], "rejected": []}
    path.write_text(json.dumps(bad))
    with pytest.raises(DonkeyError) as info:
        load_manifest(path)
    assert "\n" not in str(info.value) and "unknown keys '\\n'" in str(info.value)
