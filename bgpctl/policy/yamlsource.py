"""Reading a policy's YAML: syntax and duplicate keys as problems, plain data, and where each key sits.

One pass: ruamel.yaml's safe composer builds the node graph (every node knows its line), and
:class:`_Builder` turns it into plain JSON-able Python (str keys, int/float/bool/str/None leaves, so
it can go through pydantic in JSON mode) and the positions :class:`Locator` answers "which line holds
this field path" from. The round-trip loader is not used: it keeps every comment, and 4 MB of short
comment lines took it 27 s.

Limits (docs/design.md, "Input limits"): nesting at most :data:`MAX_DEPTH` levels (checked while
composing, so a deep file never reaches Python's recursion limit), at most :data:`MAX_ALIASES` alias
uses and :data:`MAX_NODES` values once aliases are expanded (billion laughs is refused in milliseconds),
integers of at most :data:`MAX_INT_DIGITS` digits, and only the plain YAML tags.
"""

from __future__ import annotations

import datetime
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bgpctl.errors import Problem

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (the policy itself needs 6)."""
MAX_ALIASES = 256
"""Alias expansions (``*name``, counted again inside every expansion of an alias that holds it) in one file."""
MAX_NODES = 100_000
"""Values (mappings, lists, scalars) once aliases are expanded: a large policy has a few thousand."""
MAX_INT_DIGITS = 20
"""Digits of one integer: every integer of a policy fits in 64 bits."""

Loc = Sequence[str | int]
"""A field path into the data: mapping keys (str) and list indices (int)."""


def key_text(key: object) -> str:
    """A mapping key as the string the data (and so pydantic and the messages) use for it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def render_path(loc: Loc) -> str:
    """``('peers', 1, 'address')`` -> ``peers[1].address``."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else item
    return out


def _scalar_plain(value: object) -> object:
    """A constructed YAML scalar as plain JSON-able Python."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        f = float(value)
        if math.isfinite(f):
            return f
        return ".nan" if math.isnan(f) else (".inf" if f > 0 else "-.inf")
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return str(value)


@dataclass
class _Pos:
    """Where one value sits: its line and column (0-based), and where its children sit."""

    line: int
    column: int
    keys: dict[str, _Pos] | None = None
    items: list[_Pos] | None = None


class Locator:
    """Lines (1-based) of field paths in one parsed file."""

    def __init__(self, root: _Pos | None) -> None:
        self._root = root

    def position(self, loc: Loc) -> tuple[int, int]:
        """(line, column) of the deepest part of ``loc`` that exists in the file; (1, 0) for the top."""
        node = self._root
        best = (1, 0)
        for item in loc:
            if node is None:
                break
            if isinstance(item, str) and node.keys is not None and item in node.keys:
                node = node.keys[item]
            elif isinstance(item, int) and node.items is not None and 0 <= item < len(node.items):
                node = node.items[item]
            else:
                break
            best = (node.line + 1, node.column)
        return best

    def line(self, loc: Loc) -> int:
        return self.position(loc)[0]


@dataclass(frozen=True)
class Parsed:
    data: object
    """Plain data (see :func:`plain`); None for an empty file."""
    locator: Locator
    problems: list[Problem]
    """Duplicate keys; the data keeps the first of each."""


def _syntax_problem(filename: str, e: MarkedYAMLError) -> Problem:
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark is not None else None
    column = f" column {mark.column + 1}" if mark is not None else ""
    problem = (e.problem or "").strip()
    context = (e.context or "").strip()
    if "'\\t'" in problem or "\t" in problem:
        return Problem(
            filename,
            line,
            "",
            f"tab character at{column}",
            "YAML indents with spaces only: replace the tab with spaces",
        )
    if "expected a single document" in context or "expected a single document" in problem:
        return Problem(
            filename,
            line,
            "",
            "the file holds more than one YAML document",
            "a policy is one document: remove the second '---' and what follows, or split the file",
        )
    cmark = e.context_mark
    if context.startswith("while parsing a flow") and cmark is not None and mark is not None:
        brackets = "[ ]" if "sequence" in context else "{ }"
        return Problem(
            filename,
            cmark.line + 1,
            "",
            f"YAML syntax error: the {brackets} opened at column {cmark.column + 1} is not closed properly",
            f"check its brackets, commas and quotes; the parser gave up at line "
            f"{mark.line + 1} column {mark.column + 1}: {problem}",
        )
    what = f"{context} {problem}".strip() if context else problem
    return Problem(
        filename,
        line,
        "",
        f"YAML syntax error at{column}: {what}",
        "fix the YAML: check indentation, ':' after keys and matching quotes and brackets",
    )


class _LimitExceeded(Exception):
    def __init__(self, node: Node, message: str, hint: str, loc: Loc = ()) -> None:
        self.node, self.message, self.hint, self.loc = node, message, hint, loc


_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "value")
)
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    """Composed YAML nodes -> plain data and positions, within the limits, noting duplicate keys.

    Aliases share their node in the composed graph; building expands them, so the expansion is what
    is bounded: at most :data:`MAX_ALIASES` alias uses and :data:`MAX_NODES` values in all.
    """

    def __init__(self, filename: str, constructor: SafeConstructor) -> None:
        self.filename = filename
        self.constructor = constructor
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.aliases = 0
        self.nodes = 0

    def build(self, node: Node, loc: list[str | int]) -> tuple[object, _Pos]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _LimitExceeded(
                node,
                f"more than {MAX_NODES} values once aliases are expanded",
                "a policy this big is a mistake or an attack (billion laughs): write it out without nested aliases",
            )
        if id(node) in self.seen:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _LimitExceeded(
                    node,
                    f"more than {MAX_ALIASES} alias expansions (*name)",
                    "write the values out: a policy needs few anchors and aliases",
                )
        else:
            self.seen.add(id(node))
        if len(loc) > MAX_DEPTH:
            raise _LimitExceeded(
                node, f"nested deeper than {MAX_DEPTH} levels", "a policy is a few levels deep: check the indentation"
            )
        pos = _Pos(node.start_mark.line, node.start_mark.column)
        if isinstance(node, MappingNode):
            self._tag(node, _COLLECTION_TAGS, loc)
            data, pos.keys = self._mapping(node, loc)
            return data, pos
        if isinstance(node, SequenceNode):
            self._tag(node, _COLLECTION_TAGS, loc)
            items = [self.build(item, [*loc, i]) for i, item in enumerate(node.value)]
            pos.items = [p for _, p in items]
            return [v for v, _ in items], pos
        assert isinstance(node, ScalarNode)
        self._tag(node, _SCALAR_TAGS, loc)
        if node.tag == _INT_TAG and sum(ch.isalnum() for ch in node.value) > MAX_INT_DIGITS:
            raise _LimitExceeded(
                node,
                f"the number {node.value[:20]}... has more than {MAX_INT_DIGITS} digits",
                "every number in a policy fits in 64 bits: fix the value",
                loc,
            )
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, OverflowError):  # e.g. '+_' reads as an int, '2026-13-45' as a timestamp
            raise _LimitExceeded(
                node,
                f"'{node.value[:40]}' looks like a YAML {str(node.tag).rsplit(':', 1)[-1]} but is not a valid one",
                "quote it if it is text, or write the value out",
                loc,
            ) from None
        return _scalar_plain(value), pos

    def _tag(self, node: Node, allowed: frozenset[str], loc: Loc) -> None:
        if node.tag not in allowed:
            raise _LimitExceeded(
                node, f"YAML tag {node.tag} is not allowed", "a policy uses plain YAML values: remove the tag", loc
            )

    def _key(self, key_node: Node, loc: list[str | int]) -> str:
        if isinstance(key_node, ScalarNode):
            value, _ = self.build(key_node, loc)
            return key_text(value)
        value, _ = self.build(key_node, loc)
        return json.dumps(value)

    def _mapping(self, node: MappingNode, loc: list[str | int]) -> tuple[dict[str, object], dict[str, _Pos]]:
        data: dict[str, object] = {}
        keys: dict[str, _Pos] = {}
        first: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            key = self._key(key_node, loc)
            line = key_node.start_mark.line + 1
            if key in first:
                self.problems.append(
                    Problem(
                        self.filename,
                        line,
                        render_path([*loc, key]),
                        f"duplicate key '{key}' (first at line {first[key]})",
                        "keep one of them: YAML keys must be unique in a mapping",
                    )
                )
                continue
            first[key] = line
            data[key], keys[key] = self.build(value_node, [*loc, key])
            keys[key].line, keys[key].column = key_node.start_mark.line, key_node.start_mark.column
        for source in merges:
            if not isinstance(source, MappingNode):
                raise _LimitExceeded(
                    source, "'<<' must merge a mapping or a list of mappings", "write '<<: *anchor' of a mapping"
                )
            merged, merged_pos = self.build(source, loc)
            assert isinstance(merged, dict) and merged_pos.keys is not None
            for key, value in merged.items():
                if key not in data:
                    data[key], keys[key] = value, merged_pos.keys[key]
        return data, keys


def parse_yaml(text: str, filename: str) -> Parsed:
    """Parse one policy file. A syntax error or a limit is the only problem reported then (nothing more can be
    read); duplicate keys are reported with the data (which keeps the first of each)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.max_depth = MAX_DEPTH
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a reused anchor name: YAML allows it, the latest one wins
            node = yaml.compose(text)
        if node is None:
            return Parsed(None, Locator(None), [])
        builder = _Builder(filename, yaml.constructor)
        data, pos = builder.build(node, [])
    except MaxDepthExceededError as e:
        mark = e.problem_mark
        return Parsed(
            None,
            Locator(None),
            [
                Problem(
                    filename,
                    mark.line + 1 if mark is not None else 1,
                    "",
                    f"nested deeper than {MAX_DEPTH} levels",
                    "a policy is a few levels deep: check the indentation",
                )
            ],
        )
    except MarkedYAMLError as e:
        return Parsed(None, Locator(None), [_syntax_problem(filename, e)])
    except _LimitExceeded as e:
        line = e.node.start_mark.line + 1
        return Parsed(None, Locator(None), [Problem(filename, line, render_path(e.loc), e.message, e.hint)])
    return Parsed(data, Locator(pos), builder.problems)
