"""Reading a policy's YAML: syntax and duplicate keys as problems, plain data, and where each key sits.

ruamel.yaml's round-trip loader keeps the line of every key and list item; :class:`Locator` answers
"which line holds this field path" for messages. The data handed on is plain JSON-able Python
(str keys, int/float/bool/str/None leaves) so it can go through pydantic in JSON mode.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from bgpctl.errors import Problem

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


def plain(value: object) -> object:
    """Round-trip YAML data as plain JSON-able Python (keys as strings, scalars as builtins)."""
    if isinstance(value, dict):
        return {key_text(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
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


class Locator:
    """Lines (1-based) of field paths in one parsed file."""

    def __init__(self, root: object) -> None:
        self._root = root

    def position(self, loc: Loc) -> tuple[int, int]:
        """(line, column) of the deepest part of ``loc`` that exists in the file; (1, 0) for the top."""
        node = self._root
        best = (1, 0)
        for item in loc:
            if isinstance(node, CommentedMap) and isinstance(item, str):
                key = next((k for k in node if key_text(k) == item), None)
                if key is None:
                    break
                try:
                    line, col = node.lc.key(key)
                except (KeyError, TypeError, AttributeError):  # e.g. a key merged in with '<<'
                    break
                best = (line + 1, col)
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(item, int) and 0 <= item < len(node):
                try:
                    line, col = node.lc.item(item)
                except (KeyError, TypeError, AttributeError):
                    break
                best = (line + 1, col)
                node = node[item]
            else:
                break
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


def _duplicates(filename: str, node: Node, loc: list[str | int], out: list[Problem]) -> None:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = (
                key_text(key_node.value)
                if not isinstance(key_node, MappingNode | SequenceNode)
                else str(key_node.value)
            )
            line = key_node.start_mark.line + 1
            if key in seen:
                out.append(
                    Problem(
                        filename,
                        line,
                        render_path([*loc, key]),
                        f"duplicate key '{key}' (first at line {seen[key]})",
                        "keep one of them: YAML keys must be unique in a mapping",
                    )
                )
            else:
                seen[key] = line
                _duplicates(filename, value_node, [*loc, key], out)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(filename, item, [*loc, i], out)


def parse_yaml(text: str, filename: str) -> Parsed:
    """Parse one policy file. A syntax error is the only problem reported then (the parser cannot go on)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        node = yaml.compose(text)
        problems: list[Problem] = []
        if node is not None:
            _duplicates(filename, node, [], problems)
        raw = YAML(typ="rt")
        raw.allow_duplicate_keys = True
        data = raw.load(text)
    except MarkedYAMLError as e:
        return Parsed(None, Locator(None), [_syntax_problem(filename, e)])
    return Parsed(plain(data), Locator(data), problems)
