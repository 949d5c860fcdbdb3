"""Load a policy file: every problem of the file in one run, each as ``FILE:LINE FIELD.PATH: what (hint)``.

Three passes over one parse, all reported together:

1. YAML (syntax, tabs, duplicate keys) -- :mod:`bgpctl.policy.yamlsource`;
2. structure -- pydantic, in JSON mode so that addresses written as strings pass ``strict=True``;
   each pydantic error becomes a human message with a hint (:func:`describe_error`);
3. cross-references -- :mod:`bgpctl.policy.xref` -- and dangers (a default route, a martian, a down
   action that announces, ...) -- :mod:`bgpctl.policy.danger` -- on the raw data, so they run even where
   a section failed pass 2.

A file with any problem raises :class:`~bgpctl.errors.PolicyError` carrying all of them, sorted by line.
Warnings (a secret file or variable that is missing now, while the daemon only needs it at start) do not
refuse the file; :func:`check_policy` returns them next to the policy.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from bgpctl.errors import FileProblem, PolicyError, Problem
from bgpctl.inputfile import InputFileError, check_characters, read_text
from bgpctl.policy import danger, xref
from bgpctl.policy.model import Policy, SecretRef, Withdraw
from bgpctl.policy.yamlsource import Loc, Locator, parse_yaml, render_path

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_POLICY_BYTES = 256 * 1024
"""A policy file is refused above this size, before it is parsed (production.yaml is 11 KB)."""
_TAGS = {"Announce", "Withdraw", "FileSignal", "HttpSignal", "exec", "webhook"}
"""Union tags pydantic puts into error locations (bgpctl.policy.model.ActionField, SignalField, Hook); not YAML
keys."""


@dataclass(frozen=True)
class CheckedPolicy:
    """A policy that passed, with the warnings found on the way (see :func:`check_policy`)."""

    policy: Policy
    warnings: tuple[Problem, ...]


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, validate and cross-check one policy file; raise PolicyError with every problem found."""
    return check_policy(path).policy


def load_policy_text(text: str, filename: str) -> Policy:
    """As :func:`load_policy`, for text already read; ``filename`` is only used in messages."""
    return check_policy_text(text, filename).policy


def check_policy(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> CheckedPolicy:
    filename = os.fspath(path)
    try:
        text = read_text(filename, MAX_POLICY_BYTES, "policy", example="policies/lab.yaml")
    except InputFileError as e:
        raise PolicyError([e.problem]) from None
    return check_policy_text(text, filename, environ)


def check_policy_text(text: str, filename: str, environ: Mapping[str, str] | None = None) -> CheckedPolicy:
    """Validate a policy's text; return it with its warnings, or raise PolicyError with every problem."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(
            [
                FileProblem(
                    filename,
                    None,
                    "",
                    f"is {len(text)} characters, more than the {MAX_POLICY_BYTES // 1024} KiB a policy may have",
                    "a policy is a small text file: check that this is the right file",
                )
            ]
        )
    try:
        check_characters(text, filename, "policy")
    except InputFileError as e:
        raise PolicyError([e.problem]) from None
    parsed = parse_yaml(text, filename)
    problems = list(parsed.problems)
    data = parsed.data
    if problems and data is None:  # a syntax error: nothing more can be read
        raise PolicyError(problems)
    if data is None:
        raise PolicyError(
            [
                Problem(
                    filename, 1, "", "the file is empty", "start from policies/lab.yaml or see `bgpctl policy schema`"
                )
            ]
        )
    if not isinstance(data, dict):
        raise PolicyError(
            [
                Problem(
                    filename,
                    1,
                    "",
                    f"expected a mapping of sections at the top, got {_describe(data)}",
                    "a policy starts with 'version: 1' and sections like 'speaker:'",
                )
            ]
        )

    positions: dict[Problem, tuple[int, int]] = {}
    policy: Policy | None = None
    try:
        policy = Policy.model_validate_json(json.dumps(data))
    except ValidationError as e:
        for err in e.errors(include_url=False):
            loc, p = describe_error(err, filename, parsed.locator, data)
            problems.append(p)
            positions[p] = parsed.locator.position(loc)
    for p, loc in [*xref.check(data, filename, parsed.locator), *danger.check(data, filename, parsed.locator)]:
        problems.append(p)
        positions[p] = parsed.locator.position(loc)
    if not problems:  # the secrets only of a file that is otherwise good: reading them is I/O
        env = os.environ if environ is None else environ
        for p, loc in xref.secret_problems(data, filename, parsed.locator, env):
            problems.append(p)
            positions[p] = parsed.locator.position(loc)
    if problems or policy is None:
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: positions.get(p, (p.line or 0, 0)))
        raise PolicyError(unique)
    warnings = xref.secret_warnings(data, filename, parsed.locator, os.environ if environ is None else environ)
    return CheckedPolicy(policy, tuple(warnings))


# --------------------------------------------------------------------------------------------
# pydantic errors -> problems


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _clean_loc(raw: tuple[str | int, ...], data: object) -> tuple[list[str | int], list[str | int]]:
    """Split pydantic's location into the YAML path (tags removed) and the model path (tags kept)."""
    path: list[str | int] = []
    node: object = data
    for item in raw:
        if item == "[key]":
            continue
        inside_dict = isinstance(node, dict) and isinstance(item, str) and item in node
        inside_list = isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)
        if inside_dict or inside_list:
            node = node[item]  # type: ignore[index]
            path.append(item)
        elif isinstance(item, str) and (item in _TAGS or not isinstance(node, dict)):
            continue  # a union member's name, not a key of the file
        else:
            path.append(item)  # a missing field
            node = None
    return path, list(raw)


def _unwrap(tp: object) -> object:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _tag_of(tp: object) -> str | None:
    """The discriminator tag of a union member (``Annotated[Model, Tag("x")]``), if it has one."""
    while typing.get_origin(tp) is typing.Annotated:
        for meta in getattr(tp, "__metadata__", ()):
            if isinstance(meta, Tag):
                return meta.tag
        tp = typing.get_args(tp)[0]
    return None


def _type_at(model_loc: list[str | int]) -> object:
    """The type annotation a location leads to in the Policy model (None if it leads nowhere)."""
    tp: object = Policy
    for item in model_loc:
        tp = _unwrap(tp)
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            raw = [a for a in typing.get_args(tp) if a is not type(None)]
            members = [_unwrap(a) for a in raw]
            tagged = [_unwrap(a) for a in raw if item in (_tag_of(a), getattr(_unwrap(a), "__name__", None))]
            if tagged:
                tp = tagged[0]
                continue
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if len(models) != 1:
                return None
            tp = models[0]
        if item == "[key]":
            return str
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if item in (n, f.alias)), None)
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is list and isinstance(item, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict and isinstance(item, str):
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def _fields(model: object) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _field_description(model: object, name: str) -> str:
    if isinstance(model, type) and issubclass(model, BaseModel):
        for n, f in model.model_fields.items():
            if name in (n, f.alias):
                return f.description or ""
    return ""


def did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _quoted(items: list[str]) -> str:
    return ", ".join(items)


def _number_hint(value: object, integer: bool) -> str:
    if isinstance(value, str):
        try:
            int(value) if integer else float(value)
        except ValueError:
            return "write a number" if not integer else "write a whole number"
        return "remove the quotes"
    if value is None:
        return "give a value or remove the line to use the default"
    if isinstance(value, float):
        return "write a whole number"
    return "write a number" if not integer else "write a whole number"


# one flat dispatch over pydantic's error types: each branch is one message; splitting it scatters the table
def describe_error(err: ErrorDetails, filename: str, locator: Locator, data: object) -> tuple[Loc, Problem]:  # noqa: C901, PLR0912, PLR0915
    """One pydantic error as a Problem at the right line, with a message a person can act on."""
    path, model_loc = _clean_loc(tuple(err["loc"]), data)
    kind = err["type"]
    value: Any = err.get("input")
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    secret = "md5_password" in path or (path[:1] == ["hooks"] and "secret" in path)
    field = "md5_password" if "md5_password" in path else "secret"

    def problem(message: str, hint: str = "", line_of: list[str | int] | None = None) -> tuple[Loc, Problem]:
        loc = path if line_of is None else line_of
        return loc, Problem(filename, locator.line(loc), render_path(path), message, hint)

    if secret and kind in ("model_type", "dict_type", "model_attributes_type"):
        return problem(
            f"must name where the {'password' if field == 'md5_password' else 'secret'} comes from, not hold it",
            f"write {field}: {{env: VARIABLE}} or {field}: {{file: /etc/bgpctl/NAME.key}}; "
            "the secret itself never goes in the policy",
        )
    shown = "a value" if secret else _describe(value)

    if kind == "extra_forbidden":
        key = str(path[-1])
        parent_type = _type_at(model_loc[:-1])
        known = _fields(parent_type)
        parent = path[:-1]
        if parent_type is Withdraw:
            return problem(
                f"unknown field '{key}'",
                "a withdraw action is only 'withdraw: true': remove the other fields, or remove 'withdraw' to announce",
            )
        if parent_type is SecretRef:
            return problem(
                f"unknown field '{key}'",
                "give 'file' (a path) or 'env' (a variable name); the secret itself never goes in the policy",
            )
        return problem(
            f"unknown field '{key}'",
            f"{did_you_mean(key, known)}known fields{' of ' + render_path(parent) if parent else ''}: {_quoted(known)}",
        )
    if kind == "missing":
        key = str(path[-1])
        parent = path[:-1]
        description = _field_description(_type_at(model_loc[:-1]), key)
        return problem(
            "required field is missing",
            f"add '{key}:'{' under ' + render_path(parent) if parent else ' at the top level'}"
            f"{': ' + description if description else ''}",
            line_of=parent,
        )
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return problem(f"expected an integer, got {shown}", _number_hint(value, integer=True))
    if kind in ("float_type", "float_parsing"):
        return problem(f"expected a number, got {shown}", _number_hint(value, integer=False))
    if kind in ("bool_type", "bool_parsing"):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            hint = "remove the quotes"
        elif isinstance(value, str) and value.lower() in ("yes", "no", "on", "off", "y", "n"):
            hint = f"YAML 1.2 reads '{value}' as a string: write true or false"
        else:
            hint = "write true or false"
        return problem(f"expected true or false, got {shown}", hint)
    if kind == "string_type":
        if value is None:
            return problem("expected a string, got nothing (null)", "give a value or remove the line")
        return problem(f"expected a string, got {shown}", "put it in quotes")
    if kind == "list_type" and path[:1] == ["hooks"] and path[-1:] == ["argv"]:
        return problem(
            f"expected a list, got {shown}",
            "write the program and each argument as a list item, like [/usr/local/bin/notify, --flag]: "
            "hooks run no shell",
        )
    if kind == "list_type":
        hint = (
            f"write it as a list: [{value}]"
            if isinstance(value, str | int | float) and not secret
            else "write it as a list: [a, b] or one '- item' per line"
        )
        return problem(f"expected a list, got {shown}", hint)
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        known = _fields(_type_at(model_loc))
        hint = "write 'key: value' lines indented under it"
        if known:
            hint += f"; known fields: {_quoted(known)}"
        return problem(f"expected a mapping, got {shown}", hint)
    if kind == "literal_error":
        if path and path[-1] == "withdraw":
            return problem(
                f"withdraw must be true or left out, got {shown}",
                "write 'withdraw: true' to withdraw; leave it out to announce",
            )
        return problem(
            f"must be {ctx.get('expected', '?')}, got {shown}",
            "this bgpctl reads policy version 1" if path == ["version"] else "",
        )
    if kind == "enum":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        what = f"'{value}'" if isinstance(value, str) else shown
        return problem(f"unknown value {what}", f"{did_you_mean(str(value), choices)}use one of: {_quoted(choices)}")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        limit = _number(
            ctx.get(
                {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[kind]
            )
        )
        text = {
            "greater_than_equal": f"use {limit} or more",
            "greater_than": f"use more than {limit}",
            "less_than_equal": f"use {limit} or less",
            "less_than": f"use less than {limit}",
        }[kind]
        small = kind.startswith("greater")
        return problem(f"{_number(value)} is too {'small' if small else 'large'}", text)
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return problem(
            f"needs at least {n} {'entry' if n == 1 else 'entries'}, has {ctx.get('actual_length', 0)}",
            "add one" if n == 1 else "add more",
        )
    if kind == "too_long":
        return problem(
            f"has {ctx.get('actual_length')} entries, at most {ctx.get('max_length')} allowed", "remove some"
        )
    if kind == "string_pattern_mismatch":
        key_error = err["loc"][-1:] == ("[key]",)
        what = "key" if key_error else "name"
        if ctx.get("pattern") == _NAME_PATTERN:
            return problem(
                f"'{value}' is not a valid {what}",
                "names are 1-32 lower-case letters, digits, '-' and '_', starting with a letter or digit",
            )
        if ctx.get("pattern") == _ENV_PATTERN:
            return problem(
                "not an environment variable name" if secret else f"'{value}' is not an environment variable name",
                "use letters, digits and '_', not starting with a digit",
            )
        return problem(f"{shown} does not match {ctx.get('pattern')}")
    if kind == "bgpctl":
        return problem(str(ctx.get("message", err["msg"])), str(ctx.get("hint", "")))
    if kind == "value_error":
        return problem(str(ctx.get("error", err["msg"])))
    return problem(err["msg"][:1].lower() + err["msg"][1:])


def summary(policy: Policy) -> str:
    """``3 peers, 2 regions, 3 services`` for `bgpctl policy check`."""

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return ", ".join(
        [n(len(policy.peers), "peer"), n(len(policy.regions), "region"), n(len(policy.services), "service")]
    )
