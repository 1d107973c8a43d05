"""Every path and module the repository names exists: the README, the docs, the build
files and the code's own docstrings and comments never point at a moved or deleted
file (`components/...py`) or module (`components.x.y`, in backticks)."""

from __future__ import annotations

import glob
import os
import re

import pytest

from tests.support.data import REPO_ROOT

PACKAGES = ("components", "pipeline", "serving", "benchmarks", "tests", "docs")
# A path into the project: not the tail of a URL or of another path.
NAMED_PATH = re.compile(r"(?<![\w/.<>-])((?:%s)/[\w./-]*[\w/])" % "|".join(PACKAGES))
# A module in backticks (bare dotted words in code are often variables: `pipeline.x`).
NAMED_MODULE = re.compile(r"`((?:%s)(?:\.\w+)+)[`(]" % "|".join(PACKAGES[:4]))
TEXT_FILES = ("README.md", "pyproject.toml", "Dockerfile", "Makefile", ".ci/run",
              ".dockerignore")


def _named_in() -> list:
    files = [name for name in TEXT_FILES if os.path.exists(os.path.join(REPO_ROOT, name))]
    files += [os.path.relpath(path, REPO_ROOT)
              for pattern in ("docs/*.md", "*.py", "*/**/*.py")
              for path in glob.glob(os.path.join(REPO_ROOT, pattern), recursive=True)]
    return sorted(name for name in files if not name.startswith((".venv", "build")))


def _module_problem(dotted: str) -> str:
    """Why `dotted` (a module, or a module and a name in it) names nothing, or ""."""
    parts = dotted.split(".")
    for length in range(len(parts), 0, -1):
        base = os.path.join(REPO_ROOT, *parts[:length])
        source = base + ".py" if os.path.isfile(base + ".py") else os.path.join(
            base, "__init__.py")
        if os.path.isfile(source):
            break
    else:
        return "no such module"
    if length == len(parts):
        return ""
    if length == 1:
        return "no such module"
    name = parts[length]
    with open(source) as module_file:
        found = re.search(rf"\b{re.escape(name)}\b", module_file.read())
    package = os.path.dirname(source) if source.endswith("__init__.py") else None
    if not found and not (package and (os.path.isdir(os.path.join(package, name)) or
                                       os.path.isfile(os.path.join(package, name + ".py")))):
        return f"{'.'.join(parts[:length])} has no {name}"
    return ""


def missing_names(relative_path: str) -> list:
    with open(os.path.join(REPO_ROOT, relative_path), errors="replace") as text_file:
        text = text_file.read()
    problems = []
    for line_number, line in enumerate(text.splitlines(), 1):
        for named in NAMED_PATH.findall(line):
            named = named.rstrip(".")
            if not os.path.exists(os.path.join(REPO_ROOT, named)):
                problems.append(f"{relative_path}:{line_number}: {named}: no such path")
        for dotted in NAMED_MODULE.findall(line):
            if dotted.endswith(".py"):  # a file name, `pipeline.py`
                continue
            if problem := _module_problem(dotted):
                problems.append(f"{relative_path}:{line_number}: {dotted}: {problem}")
    return problems


def test_every_named_path_and_module_exists():
    problems = [problem for name in _named_in() if name != "tests/test_named_paths.py"
                for problem in missing_names(name)]
    assert problems == []


@pytest.mark.parametrize("text, named", [
    ("see components/transform.py", "components/transform.py: no such path"),
    ("`components.transform.channel_stats`",
     "components.transform.channel_stats: components.transform has no channel_stats"),
    ("`serving.rest_json`", "serving.rest_json: no such module"),
])
def test_a_stale_name_is_caught(tmp_path, text, named):
    """The check itself can fail: a name that does not exist is reported."""
    probe = tmp_path / "probe.md"
    probe.write_text(f"Intro.\n{text} and more.\n")
    (problem,) = missing_names(str(probe))
    assert problem.endswith(f":2: {named}")
