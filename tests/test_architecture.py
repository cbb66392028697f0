"""The package's shape: no import cycles, pure modules free of I/O, every folder packaged,
and an import name that does not clash with PyPI's ``watchdog``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "watchdog"
PACKAGE = "dialnexa_watchdog"

# Modules that must stay pure: no network, no database, no scheduler, no clock, no env.
PURE = [
    "model",
    "windows",
    "durations",
    "ingest.parse",
    "ingest.agents",
    "activity",
    "alerts.stopped",
    "ingest.tracker",
    "ingest.budget",
    "alerts.rules",
    "alerts.incremental",
    "textformat",
    "alerts.incidents",
    "alerts.state",
    "readiness",
    "alerts.snapshots",
    "alerts.sequential",
    "alerts.detector",
    "alerts.diff",
    "alerts.baselines",
]
IMPURE_IMPORTS = {
    "httpx",
    "slack_sdk",
    "prometheus_client",
    "apscheduler",
    "sqlite3",
    "psycopg",
    "socket",
    "threading",
    "os",
    "time",
    "pydantic",
    "pydantic_settings",
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(package-internal modules, top-level external names) that ``name`` imports, including
    imports inside functions; ``if TYPE_CHECKING:`` blocks are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    if name == "":
        package = []
    internal: set[str] = set()
    external: set[str] = set()

    def skip(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        )

    def visit(node: ast.AST) -> None:
        if skip(node):
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                external.add(a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                external.add((node.module or "").split(".")[0])
            else:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                mod = ".".join(target)
                for a in node.names:
                    sub = f"{mod}.{a.name}" if mod else a.name
                    internal.add(sub if sub in known else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return internal, external


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {n: imports_of(n, p, known)[0] - {n} for n, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``g`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if m not in g:
                continue
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if state.get(m) is None and (found := dfs(m)) is not None:
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := dfs(n)) is not None:
            return found
    return None


@pytest.mark.slow
def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(x or PACKAGE for x in cycle or [])


def test_the_cycle_finder_finds_cycles_and_function_local_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    mods = modules()
    # cli imports its sub-commands' modules inside functions: those edges count too
    internal, _ = imports_of("cli", mods["cli"], set(mods))
    assert "app" in internal and "service" in internal


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name: str) -> None:
    mods = modules()
    internal, external = imports_of(name, mods[name], set(mods))
    bad = sorted(external & IMPURE_IMPORTS)
    assert not bad, f"{name} imports {bad}"
    impure_internal = sorted(m for m in internal if m and m not in PURE and m != "notify")
    assert not impure_internal, f"{name} imports non-pure project modules {impure_internal}"


def test_the_rules_module_takes_plain_values_not_config_models() -> None:
    mods = modules()
    internal, _ = imports_of("alerts.rules", mods["alerts.rules"], set(mods))
    assert not any(m.startswith("config") for m in internal)


def test_every_folder_is_a_listed_package() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {
        ".".join([PACKAGE, *p.parent.relative_to(SRC).parts]) for p in SRC.rglob("__init__.py")
    }
    assert folders == listed


def test_modules_stay_small_or_say_why() -> None:
    long = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and "Longer than" not in doc:
            long.append(f"{name}: {n} lines")
    assert not long, "over ~400 lines without a reason in the docstring: " + ", ".join(long)


@pytest.mark.slow
def test_the_wheel_and_pypi_watchdog_live_in_one_virtualenv(tmp_path: Path) -> None:
    """pip install the built wheel, then PyPI's watchdog, into one fresh virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*cmd: str | Path) -> str:
        done = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT)
    [wheel] = wheels.glob("dialnexa_watchdog-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    run(bin_dir / "pip", "install", "-q", wheel)
    run(bin_dir / "pip", "install", "-q", "watchdog")
    version = run(bin_dir / "dialnexa-watchdog", "--version")
    assert version.startswith("dialnexa-watchdog ")
    example = ROOT / "config" / "watchdog.example.yaml"
    env["DIALNEXA_API_KEY"] = "k"
    env["WATCHDOG_STATE__PATH"] = str(tmp_path / "state.sqlite3")
    env["WATCHDOG_METRICS__LISTEN"] = "127.0.0.1:0"  # check-config binds it: any free port
    checked = subprocess.run(
        [str(bin_dir / "dialnexa-watchdog"), "check-config", "--config", str(example)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert "Traceback" not in checked.stderr and "config OK" in checked.stderr, checked.stderr
    run(bin_dir / "python", "-c", "import watchdog.observers, dialnexa_watchdog.cli")
    run(bin_dir / "python", "-m", PACKAGE, "--version")
