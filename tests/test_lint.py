"""The gates developers also run through pre-commit: ruff (lint rules and formatting of pyproject.toml), spelling
(_typos.toml), the layers contract of pyproject.toml and an acyclic import graph; and README's map names files that
exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.paths import ROOT


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    result = subprocess.run([_tool("ruff"), *command, str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_spelling():
    result = subprocess.run([_tool("typos")], capture_output=True, text=True, cwd=ROOT)  # words allowed: _typos.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_runs_the_gates_of_this_file():
    hooks = (ROOT / ".pre-commit-config.yaml").read_text()
    assert all(f"entry: {tool}" in hooks for tool in ("ruff format", "ruff check", "typos", "lint-imports"))


def test_layers_contract():
    result = subprocess.run([_tool("lint-imports")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


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
