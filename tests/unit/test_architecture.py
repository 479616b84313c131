"""The dependency rules of the design card, checked on the import graph of the project's own modules.

The graph is read with ``ast`` from the source of ``core``, ``handlers``, ``litefaas`` and ``model``,
imports inside functions included (they run too, only later); imports under ``if TYPE_CHECKING:``
are left out, as they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "handlers", "litefaas", "model")
PROVIDER_SDKS = (
    "azure",
    "functions_framework",
    "flask",
    "boto3",
    "botocore",
    "google",
    "werkzeug",
    "starlette",
)
HANDLER_SDKS = {
    "aws": {"snapshot_restore_py"},
    "gcp": {"functions_framework", "flask", "starlette"},
    "azure": {"azure"},
}  # aws: the Lambda runtime's SnapStart hooks


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "artifacts" not in path.parts:
                modules[module_name(path)] = path
    return modules


MODULES = source_modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _import_nodes(node)


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from p import m`` counts as ``p.m`` when it is one)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: {target for target in imports_of(name) if target in MODULES} for name in MODULES}
EXTERNAL = {name: {target.split(".")[0] for target in imports_of(name)} for name in MODULES}


def find_cycle() -> list[str] | None:
    """One import cycle among the project's modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_the_project():
    """The checks below read real modules and real edges (lazy ones too)."""
    assert {"core.app", "handlers.aws.handler", "litefaas.cli.main", "model.pipeline"} <= MODULES.keys()
    assert "litefaas.cli.build" in GRAPH["litefaas.cli.main"]
    assert "litefaas.client" in GRAPH["litefaas.cli.calls"]  # imported inside a function


def test_no_import_cycle():
    """No module imports itself through others, lazy imports included."""
    assert find_cycle() is None, " -> ".join(find_cycle() or [])


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] == "core"))
def test_core_imports_no_sdk_no_tensorflow_no_tooling(name):
    """core imports no provider SDK, no TensorFlow, nothing from litefaas/, model/ or handlers/."""
    forbidden = {*PROVIDER_SDKS, "tensorflow", "keras", "litefaas", "model", "handlers"}
    assert not EXTERNAL[name] & forbidden


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("handlers.")))
def test_handlers_import_core_and_their_sdk_only(name):
    """A handler imports the standard library, core, its own package and its provider's SDK; never model/."""
    provider = name.split(".")[1]
    allowed = {"core", "handlers", *HANDLER_SDKS.get(provider, set()), *sys.stdlib_module_names}
    assert EXTERNAL[name] <= allowed, EXTERNAL[name] - allowed


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] == "model"))
def test_model_does_not_import_the_tooling(name):
    """model/ (build time) never imports litefaas/ or handlers/."""
    assert not EXTERNAL[name] & {"litefaas", "handlers"}


def test_library_code_never_imports_the_cli():
    """Only litefaas.cli turns errors into messages: nothing outside it imports it."""
    offenders = [
        n
        for n in MODULES
        if n.split(".")[:2] != ["litefaas", "cli"]
        and any(t.split(".")[:2] == ["litefaas", "cli"] for t in GRAPH[n])
    ]
    assert offenders == []


def test_the_client_imports_no_runtime_or_cli_packages():
    """``pip install '.[client]'`` is enough: the client loads no LiteRT, provider SDK, TensorFlow or Pillow.

    (httpx itself loads rich where rich is installed, for its own command line: not ours to check.)"""
    code = (
        "import sys; import litefaas.client; "
        "heavy = {'ai_edge_litert', 'tensorflow', 'flask', 'azure', 'matplotlib', 'PIL', 'litefaas.cli'}; "
        "print(sorted(heavy & ({name.split('.')[0] for name in sys.modules} | set(sys.modules))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"
