"""Hostile run configs (hypothesis): every mutation of a valid config is accepted as an equal,
round-tripping config or refused with a ConfigError that names the mutated field; never another
exception, whether the config arrives as a dict, JSON text or bytes, or through the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.workloads import MNIST_SIZED
from stepnet.cli import main
from trainer.config import ConfigError, RunConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits.json"
BASES: list[dict[str, Any]] = [
    json.loads(EXAMPLE.read_text()),
    {"run_id": "mnist-sized", "dataset": {"source": "mnist.npz"}, **MNIST_SIZED},
]
FIELD_NAMES = ["units", "activation", "learning_rate", "label", "seed", "mode", "name", "x" * 80]

# the values a hostile or careless user writes where a field is expected
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.sampled_from(
        [
            "",
            " ",
            "relu",
            "softmax",
            "mse",
            "adam",
            "fused",
            "1",
            "-1",
            "1e999",
            "NaN",
            "=cmd|' /C calc'!A0",
            "run\u00e9\u4e2d",
            "a" * 41,
            "s3://",
            "s3://b/k/",
            "data.txt",
            "builtin:mnist",
            "../../etc/passwd",
            "folder",
            "x.NPZ",
            "\x00",
        ]
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=10), SCALARS, max_size=3),
    st.lists(st.fixed_dictionaries({"units": SCALARS, "activation": SCALARS}), max_size=3),
)


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into a document: dict keys and list indices, the root excluded."""
    children: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A valid config with one to three mutations; returns the document and the dotted paths
    mutated (an error must name one of them)."""
    document: Any = copy.deepcopy(draw(st.sampled_from(BASES)))
    named: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths(document)))
        *parents, last = path
        parent: Any = document
        for part in parents:
            parent = parent[part]
        kind = draw(st.sampled_from(["replace", "delete", "unknown", "wrap"]))
        if kind == "replace":
            parent[last] = draw(VALUES)
        elif kind == "delete":
            del parent[last]
        elif kind == "unknown" and isinstance(parent, dict):
            last = draw(st.sampled_from(FIELD_NAMES) | st.text(min_size=1, max_size=12))
            if last in parent:
                continue
            parent[last] = draw(SCALARS)
        else:  # a value wrapped in a list, as a user who thinks "several" might write it
            parent[last] = [parent[last]]
        named.append(".".join(str(part) for part in (*parents, last)))
        if not isinstance(document, dict) or not paths(document):
            break
    return document, named


def _as_sent(document: Any, form: str) -> Any:
    if form == "dict":
        return document
    text = json.dumps(document)  # NaN and Infinity as JavaScript writes them
    return text if form == "text" else text.encode("utf-8")


@settings(max_examples=600, deadline=None)
@given(case=mutated(), form=st.sampled_from(["dict", "text", "bytes"]))
@example(case=({**BASES[0], "run_id": "r\u00e9sum\u00e9"}, ["run_id"]), form="bytes")
@example(case=({**BASES[0], "epochs": 10**400}, ["epochs"]), form="dict")
@example(case=({**BASES[0], "l2": float("nan")}, ["l2"]), form="text")
def test_a_mutated_config_is_accepted_whole_or_refused_naming_the_field(
    case: tuple[Any, list[str]], form: str
) -> None:
    # Given a valid config with one to three fields changed, deleted, added or wrapped
    document, named = case

    # When it is parsed
    try:
        config = parse_config(_as_sent(document, form))

    # Then it is refused with a ConfigError that names one of the mutated fields...
    except ConfigError as error:
        message = str(error)
        assert error.problems and all(line.strip() for line in error.problems), message
        mentioned = [p for p in named if p.split(".")[0] in message or p.split(".")[-1] in message]
        assert mentioned, (named, message)
        return

    # ...or accepted: a config that reads back equal from what the store keeps
    assert isinstance(config, RunConfig)
    assert parse_config(config.to_json()) == config


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"\xff\xfe{", "not UTF-8 text"),
        ('{"epochs": 1' + "0" * 5000 + "}", "the config is not usable JSON"),
        ("[" * 100_000 + "]" * 100_000, "nests arrays or objects too deeply"),
        ('{"epochs": 1e999}', "epochs"),
        ("null", "must be a JSON object"),
    ],
    ids=["utf16-bytes", "5000-digit-int", "deep-nesting", "inf", "null"],
)
def test_config_text_that_json_cannot_read_is_a_config_error(document: Any, fragment: str) -> None:
    # Given a config whose text the JSON reader fails on in ways other than a syntax error
    # When it is parsed
    with pytest.raises(ConfigError) as raised:
        parse_config(document)

    # Then the error says what is wrong with the text
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
        (json.dumps({**BASES[0], "epochs": -3}).encode(), "epochs: Input should be greater"),
        (json.dumps({**BASES[0], "optimizr": {}}).encode(), "optimizr: unknown field"),
        (b"", "not valid JSON"),
    ],
    ids=["binary", "negative-epochs", "unknown-key", "empty"],
)
def test_stepnet_local_with_a_bad_config_prints_the_problem_not_a_traceback(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    # Given a bad config file
    path = tmp_path / "bad.json"
    path.write_bytes(content)

    # When `stepnet local` is given it
    with pytest.raises(SystemExit) as exited:
        main(["local", str(path), "--out", str(tmp_path / "out")])

    # Then it exits with a message naming the file and the problem, and writes nothing
    message = str(exited.value.code)
    assert message.startswith(f"error: {path}: ") and fragment in message, message
    assert not (tmp_path / "out").exists()
