"""No import circles in bgpctl or bgpctl_lab, and the product never imports the lab.

Module-level imports (those under ``if TYPE_CHECKING:`` too: a circle for the type checker is a
circle in the design; not those inside functions) form the import graph; it must be acyclic. Each
module of the lab must also import on its own, first, in a fresh interpreter (a circle that only
bites in one import order shows up there).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bgpctl
import bgpctl_lab

PACKAGES = {"bgpctl": Path(bgpctl.__file__).parent, "bgpctl_lab": Path(bgpctl_lab.__file__).parent}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [pkg, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _module_level_imports(module: str, path: Path) -> set[str]:
    """Modules of MODULES that ``module`` imports when it is imported."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *filter(None, [base])])
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    deps = set()
    for name in found:
        known = name
        while known and known not in MODULES:
            known = known.rpartition(".")[0]
        if known and known != module and not module.startswith(known + "."):  # a package is its modules' parent
            deps.add(known)
    return deps


GRAPH = {m: _module_level_imports(m, p) for m, p in MODULES.items()}


def test_there_are_no_import_circles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            dfs(m)
    assert cycles == []


def test_the_product_never_imports_the_lab() -> None:
    offenders = {
        m: sorted(d for d in deps if d.startswith("bgpctl_lab")) for m, deps in GRAPH.items() if m.startswith("bgpctl.")
    }
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_graph_sees_type_checking_imports(tmp_path: Path) -> None:
    """The services module once imported the runner for its type (``if TYPE_CHECKING:``) while the
    runner imported it: the graph must see both kinds of import for the circle check to mean anything."""
    assert "bgpctl_lab.services" in GRAPH["bgpctl_lab.runner"]
    assert "bgpctl_lab.runner" in GRAPH["bgpctl_lab.drill"]  # a TYPE_CHECKING-only import
    assert "bgpctl_lab.runner" not in GRAPH["bgpctl_lab.services"]


def _third_party(modules: dict[str, Path]) -> list[str]:
    """The top-level packages outside ours that our modules import at module level."""
    names: set[str] = set()
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names - {"__future__", *PACKAGES} - set(sys.stdlib_module_names))


# One interpreter imports the third-party packages (never a module of ours), then forks a child per module
# that imports just that module, first: the same as a fresh interpreter for our modules' import order, at a
# fraction of the cost of one interpreter per module.
FORK_EACH = """
import importlib, json, os, sys, traceback
for name in sys.argv[2].split(","):
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the child reports it if one of ours needs it
assert not any(m == "bgpctl" or m.startswith(("bgpctl.", "bgpctl_lab")) for m in sys.modules), "ours already imported"
results = {}
for module in sys.argv[1].split(","):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            out = b""
        except BaseException:
            out = traceback.format_exc().encode() or b"failed"
        os.write(w, out)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    results[module] = err if err or status == 0 else f"child died: status {status}"
print(json.dumps(results))
"""
LAB_MODULES = sorted(m for m in MODULES if m.startswith("bgpctl_lab"))


@pytest.fixture(scope="module")
def imported_first() -> dict[str, str]:
    """Per lab module: "" when it imported first on its own, else the traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", FORK_EACH, ",".join(LAB_MODULES), ",".join(_third_party(MODULES))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: dict[str, str] = json.loads(proc.stdout)
    return results


@pytest.mark.parametrize("module", LAB_MODULES)
def test_each_lab_module_imports_first_on_its_own(module: str, imported_first: dict[str, str]) -> None:
    assert imported_first[module] == ""
