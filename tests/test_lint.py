"""The gates developers run through pre-commit (ruff format, ruff check, typos with _typos.toml, the layers contract
of pyproject.toml, mypy), run here on every tracked file so that CI runs them; an acyclic import graph; and README's map
names files that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.paths import ROOT

GATES = ("ruff format", "ruff check", "typos", "lint-imports", "mypy")  # formatting, lint, spelling, layers, types


def test_pre_commit_holds_every_gate():
    entries = re.findall(r"^\s*entry: (.+)$", (ROOT / ".pre-commit-config.yaml").read_text(), flags=re.M)
    assert [next(gate for gate in GATES if entry.startswith(gate)) for entry in entries] == list(GATES)


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_every_tracked_file():
    """The hooks as a commit runs them (mypy takes about 1.5 min on 2 cores); a hook that changes a file fails."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: pre-commit runs on a repository's tracked files")
    command = [_tool("pre-commit"), "run", "--all-files", "--show-diff-on-failure", "--color", "never"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the hooks are this env's tools
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _tool(name: str) -> str:
    """The tool of this environment: the venv's scripts directory need not be on PATH."""
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle():
    graph = grimp.build_graph("sonic", exclude_type_checking_imports=True)
    edges = {
        module: {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if not module.startswith(f"{imported}.")
        }
        for module in graph.modules
    }
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check can fail


def test_every_path_in_the_readme_map_exists():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Where things are") :]
    paths = {path for path in re.findall(r"`((?:sonic|benchmarks|tests|docs|configs)/[\w/.-]+?)(?:::\w+)?`", table)}
    assert len(paths) > 20
    assert sorted(path for path in paths if not (ROOT / path).exists()) == []
