"""Event names live in bgpctl.events, once each, in one scheme, and the emitters use the constants, not literals.

The scheme is ``area.thing``: a lower-case area (the component: ``bgp``, ``daemon``, ``path``, ...), a dot,
and a lower-case snake_case thing (``bgp.session_not_established``). Checked on the source (AST):

* every structlog call in bgpctl/ (a ``debug``/``info``/``warning``/``error``/``exception``/``critical`` call
  on a logger: ``log``, ``self.log``, ``self._log``) names its event with an ``events.X`` constant, directly
  or through a loop variable that only ever holds such constants;
* a logger's method is only ever called, never taken as a value (``level = log.warning`` would hide the
  event from this check), and loggers go by those names only;
* no string literal in bgpctl/ or bgpctl_lab/ spells an event name (consumers use the constants too);
* docs/observability.md lists every event.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpctl import events

PACKAGE = Path(events.__file__).parent
REPO = PACKAGE.parent
SCHEME = re.compile(r"[a-z]+\.[a-z]+(?:_[a-z]+)*")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "msg", "log", "fatal", "warn"}
LOGGERS = {"log", "_log"}
"""What a structlog logger is called in bgpctl/ (parameters, attributes): the check below finds its calls
by these names, and :func:`test_loggers_go_by_the_names_the_scan_knows` keeps it so."""


def _names() -> dict[str, str]:
    return {k: v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}


def _sources(*roots: Path) -> Iterator[tuple[Path, ast.Module]]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def test_every_event_name_is_unique_and_area_dot_thing() -> None:
    names = _names()
    assert len(set(names.values())) == len(names)
    for constant, name in names.items():
        assert SCHEME.fullmatch(name), f"{constant} = {name!r}: write area.thing, lower case, snake_case thing"
        assert constant == name.replace(".", "_").upper(), constant


def _receiver(func: ast.expr) -> str | None:
    """``log`` for ``log.info`` / ``self.log.info`` / ``self._log.info`` (the name the method is called on)."""
    if not isinstance(func, ast.Attribute) or func.attr not in LOG_METHODS:
        return None
    r = func.value
    name = r.attr if isinstance(r, ast.Attribute) else r.id if isinstance(r, ast.Name) else None
    return name if name in LOGGERS else None


def _is_constant(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "events"
        and node.attr in _names()
    )


def _bound_values(scope: ast.AST, name: str) -> list[ast.expr] | None:
    """What ``name`` is bound to in ``scope``: plain assignments, and the items of a ``for`` over a literal
    tuple/list of tuples that unpacks into it. None when it is bound any other way (a parameter, ...)."""
    values: list[ast.expr] = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
            slots = [i for i, t in enumerate(node.target.elts) if isinstance(t, ast.Name) and t.id == name]
            if not slots:
                continue
            if not isinstance(node.iter, ast.Tuple | ast.List):
                return None
            for item in node.iter.elts:
                if not isinstance(item, ast.Tuple | ast.List):
                    return None
                values.extend(item.elts[i] for i in slots)
        elif isinstance(node, ast.arg) and node.arg == name:
            return None
    return values or None


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def event_problems(path: Path, tree: ast.Module) -> list[str]:
    """The log calls of one module whose event is not an ``events.X`` constant."""
    problems = []
    scopes = {id(call): fn for fn in _functions(tree) for call in ast.walk(fn) if isinstance(call, ast.Call)}
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or _receiver(call.func) is None:
            continue
        first = call.args[0] if call.args else None
        if first is not None and _is_constant(first):
            continue
        if isinstance(first, ast.Name) and (scope := scopes.get(id(call))) is not None:
            bound = _bound_values(scope, first.id)
            if bound is not None and all(_is_constant(v) for v in bound):
                continue
        shown = ast.unparse(first) if first is not None else "nothing"
        problems.append(f"{_where(path, call)}: event {shown} is not a bgpctl.events constant")
    return problems


def test_every_log_call_names_its_event_with_a_constant() -> None:
    problems = [p for path, tree in _sources(PACKAGE) for p in event_problems(path, tree)]
    assert problems == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("def f(log):\n    log.info('daemon.start')\n", "event 'daemon.start'"),
        ("def f(self):\n    self._log.warning(f'bgp.{x}')\n", "event f'bgp.{x}'"),
        ("def f(self):\n    self.log.error(events.NO_SUCH_EVENT)\n", "event events.NO_SUCH_EVENT"),
        ("def f(log, event):\n    log.info(event)\n", "event event is not"),
        ("def f(log):\n    for e in names:\n        log.info(e)\n", "event e is not"),
        ("def f(log):\n    for e, n in (('x.y', 1),):\n        log.info(e)\n", "event e is not"),
        ("def f(log):\n    log.info()\n", "event nothing"),
    ],
)
def test_the_scan_catches_an_event_that_is_no_constant(source: str, found: str) -> None:
    problems = event_problems(PACKAGE / "example.py", ast.parse(source))
    assert len(problems) == 1 and found in problems[0], problems


def test_the_scan_accepts_constants_and_loop_variables_of_constants() -> None:
    source = (
        "def f(self, log):\n"
        "    log.info(events.DAEMON_START, pid=1)\n"
        "    for watch, event in ((a, events.BGP_SYN_UNANSWERED), (b, events.BGP_PACKETS_UNACKNOWLEDGED)):\n"
        "        self._log.warning(event, peer=watch)\n"
    )
    assert event_problems(PACKAGE / "example.py", ast.parse(source)) == []


def test_log_methods_are_only_called_directly() -> None:
    taken = []
    for path, tree in _sources(PACKAGE):
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        taken += [
            _where(path, node)
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and _receiver(node) is not None and id(node) not in called
        ]
    assert taken == [], "call log.<level>(events.X, ...) directly, so the event can be checked"


def test_loggers_go_by_the_names_the_scan_knows() -> None:
    """A structlog logger passed in (annotated FilteringBoundLogger) is called ``log``, kept as ``log`` or
    ``_log``; only bgpctl/log.py makes one (``get``)."""
    wrong = []
    for path, tree in _sources(PACKAGE):
        for node in ast.walk(tree):
            annotation = ast.unparse(node.annotation) if isinstance(node, ast.arg) and node.annotation else ""
            if isinstance(node, ast.arg) and "FilteringBoundLogger" in annotation and node.arg not in LOGGERS:
                wrong.append(f"{_where(path, node)}: parameter {node.arg}")
            if isinstance(node, ast.Assign):
                pairs = (
                    zip(node.targets[0].elts, node.value.elts, strict=False)
                    if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(t, node.value) for t in node.targets]
                )
                for target, value in pairs:
                    holds_logger = isinstance(value, ast.Name) and value.id in LOGGERS
                    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                    if holds_logger and name not in LOGGERS:
                        wrong.append(f"{_where(path, node)}: {name} = {ast.unparse(value)}")
            if isinstance(node, ast.Call) and path.name != "log.py":
                f = ast.unparse(node.func)
                if f in {"structlog.get_logger", "logging.getLogger", "structlog.wrap_logger"}:
                    wrong.append(f"{_where(path, node)}: {f}: use bgpctl.log.get")
    assert wrong == []


def test_no_literal_spells_an_event_name() -> None:
    """Emitters and readers (the control renderer, the lab's drills and demo) use the constants."""
    names = set(_names().values())
    inline = [
        f"{_where(path, node)}: {node.value!r}"
        for path, tree in _sources(PACKAGE, REPO / "bgpctl_lab")
        if path.name != "events.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]
    assert inline == []


def test_docs_list_every_event() -> None:
    doc = (REPO / "docs" / "observability.md").read_text()
    missing = sorted(name for name in _names().values() if f"`{name}`" not in doc)
    assert missing == [], "add them to docs/observability.md (Log events)"
