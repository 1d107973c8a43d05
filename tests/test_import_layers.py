"""Imports run one way: runners -> pipeline/ -> components/ -> the contract, and
serving/ -> the contract, and no module imports itself through others (a circle, even
inside one package). Every module's imports, lazy ones inside functions included, are
read from its source and checked against the layer it belongs to."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from tests.support.data import REPO_ROOT

CONTRACT = "components.contract"
# The entry points of each orchestrator: the only modules allowed to import the rest
# of pipeline/ freely, and that nothing else imports. A new runner is added here.
RUNNERS = {"pipeline.__main__", "pipeline.local_runner", "pipeline.airflow_dag",
           "pipeline.kubeflow_runner"}
PROJECT_PACKAGES = ("components", "pipeline", "serving", "pipeline_config", "tests",
                    "benchmarks")
# What the server must start without: its start-up is seconds, TFX's import alone ~30 s.
HEAVY_FOR_SERVING = ("tfx", "tensorflow_transform", "tensorflow_model_analysis",
                     "tensorflow_data_validation", "apache_beam", "ml_metadata", "tfx_bsl")


def layer_of(module: str) -> str:
    if module == CONTRACT:
        return "contract"
    if module in RUNNERS or module.startswith("pipeline.cli."):  # the CLI's commands
        return "runner"
    top = module.split(".")[0]
    return {"components": "components", "pipeline": "pipeline", "serving": "serving",
            "pipeline_config": "config", "tests": "tests",
            "benchmarks": "benchmarks"}.get(top, "external")


def allowed(importer: str, imported: str) -> bool:
    """Whether module `importer` may import module `imported`."""
    source, target = layer_of(importer), layer_of(imported)
    if source == "contract":
        top = imported.split(".")[0]
        return top == "__future__" or top in sys.stdlib_module_names
    if source == "serving":
        if imported.split(".")[0] in HEAVY_FOR_SERVING:
            return False
        return target in ("serving", "contract", "external")
    rules = {
        "components": {"contract", "components", "external"},
        "config": {"contract", "components", "external"},
        "pipeline": {"contract", "components", "config", "pipeline", "external"},
        "runner": {"contract", "components", "config", "pipeline", "runner", "external"},
    }
    return target in rules[source]


def module_name(path: str, root: str = REPO_ROOT) -> str:
    relative = os.path.relpath(path, root)[:-len(".py")].split(os.sep)
    if relative[-1] == "__init__":
        relative = relative[:-1]
    return ".".join(relative)


def imports_of(path: str, root: str = REPO_ROOT) -> list:
    """(line, imported module) for every import statement in the file under `root`, at
    any depth. `from package import name` counts as importing `package.name` when that
    is a module of the project, else `package`."""
    with open(path) as source_file:
        tree = ast.parse(source_file.read(), path)
    package = module_name(path, root).rsplit(".", 1)[0] if not path.endswith(
        "__init__.py") else module_name(path, root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = any(
                    os.path.exists(os.path.join(tree, *candidate.split(".")) + ".py")
                    or os.path.isdir(os.path.join(tree, *candidate.split(".")))
                    for tree in {root, REPO_ROOT})
                found.append((node.lineno, candidate if is_module else base))
    return found


def shipped_modules() -> list:
    paths = [os.path.join(REPO_ROOT, "pipeline_config.py")]
    for package in ("components", "pipeline", "serving"):
        for root, _, files in os.walk(os.path.join(REPO_ROOT, package)):
            paths += [os.path.join(root, name) for name in files if name.endswith(".py")]
    return sorted(paths)


def wrong_way_imports(paths, root: str = REPO_ROOT) -> list:
    """Every import in `paths` (files under `root`) that runs the wrong way."""
    return [f"{os.path.relpath(path, root)}:{line}: {module_name(path, root)} "
            f"({layer_of(module_name(path, root))}) imports {imported} ({layer_of(imported)})"
            for path in paths for line, imported in imports_of(path, root)
            if not allowed(module_name(path, root), imported)]


def project_modules() -> list:
    """Every module of the project: what ships, the benchmarks and the tests."""
    paths = shipped_modules()
    for package in ("benchmarks", "tests"):
        for root, _, files in os.walk(os.path.join(REPO_ROOT, package)):
            paths += [os.path.join(root, name) for name in files if name.endswith(".py")]
    return sorted(paths)


def import_circles(paths, root: str = REPO_ROOT) -> list:
    """Each set of modules among `paths` that import one another in a circle (lazy
    imports count: a circle held apart only by a function-level import is still one),
    as a sorted list of names. Tarjan's strongly connected components."""
    modules = {module_name(path, root): path for path in paths}
    graph = {name: sorted({imported for _, imported in imports_of(path, root)
                           if imported in modules and imported != name})
             for name, path in modules.items()}
    index, low, on_stack, stack, circles = {}, {}, set(), [], []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for imported in graph[name]:
            if imported not in index:
                visit(imported)
                low[name] = min(low[name], low[imported])
            elif imported in on_stack:
                low[name] = min(low[name], index[imported])
        if low[name] == index[name]:
            component = []
            while not component or component[-1] != name:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return circles


def test_no_module_imports_itself_through_others():
    assert len(project_modules()) > 100
    assert import_circles(project_modules()) == []


def test_a_circle_inside_a_package_is_caught(tmp_path):
    """Three modules of one package in a circle, one link a lazy import."""
    (tmp_path / "serving").mkdir()
    sources = {"a": "import serving.b\n", "b": "from serving import c\n",
               "c": "def f():\n    import serving.a\n", "d": "import serving.a\n"}
    for name, source in sources.items():
        (tmp_path / "serving" / f"{name}.py").write_text(source)
    paths = [str(tmp_path / "serving" / f"{name}.py") for name in sources]
    assert import_circles(paths, root=str(tmp_path)) == [["serving.a", "serving.b",
                                                         "serving.c"]]


def test_every_shipped_module_imports_only_downward():
    assert len(shipped_modules()) > 30
    assert wrong_way_imports(shipped_modules()) == []


@pytest.mark.parametrize("package, source, wrong", [
    ("components", "from serving.model_store import ModelStore\n", "serving.model_store"),
    ("components", "def f():\n    from pipeline import summary\n", "pipeline.summary"),
    ("pipeline", "from pipeline import local_runner\n", "pipeline.local_runner"),
    ("serving", "from components.data import cifar10_format\n",
     "components.data.cifar10_format"),
    ("serving", "def f():\n    import tfx.v1\n", "tfx.v1"),
    ("components", "import tests.support.data\n", "tests.support.data"),
])
def test_a_wrong_way_import_is_caught(tmp_path, package, source, wrong):
    """The check itself can fail: a module of `package` (written in a copy of the tree's
    shape under tmp_path) with a wrong-way import, at module level or inside a function,
    is reported with its line."""
    (tmp_path / package).mkdir()
    probe = tmp_path / package / "probe.py"
    probe.write_text(source)
    (problem,) = wrong_way_imports([str(probe)], root=str(tmp_path))
    assert problem.startswith(f"{package}/probe.py:") and f"imports {wrong} " in problem


def test_the_contract_imports_only_the_standard_library():
    path = os.path.join(REPO_ROOT, "components", "contract.py")
    imported = {name.split(".")[0] for _, name in imports_of(path)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    with open(os.path.join(REPO_ROOT, "components", "__init__.py")) as package_init:
        body = ast.parse(package_init.read()).body
    # Importing the contract runs nothing else: the package holds its docstring alone.
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
               for node in body) and len(body) <= 1


def test_the_server_starts_without_tfx():
    """Importing every serving module, as `python -m serving serve` does, loads no TFX,
    Beam, TFMA or ML Metadata, and nothing of the project but serving/ and the
    contract."""
    code = ("import json, sys\n"
            "import serving.__main__, serving.model_server, serving.rest_server, "
            "serving.grpc_server, serving.client\n"
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted({name.split(".")[0] for name in loaded} & set(HEAVY_FOR_SERVING)) == []
    project = [name for name in loaded if name.split(".")[0] in PROJECT_PACKAGES]
    assert sorted(name for name in project if not name.startswith("serving")) == [
        "components", "components.contract"]


def test_the_cli_loads_no_tensorflow_before_it_prepares_it():
    """`python -m pipeline` sets TensorFlow's environment (oneDNN, log level) from the
    run's settings before TensorFlow loads: importing the CLI and its config loads
    neither TensorFlow nor TFX."""
    code = ("import json, sys\n"
            "import pipeline.__main__, pipeline_config, pipeline.airflow_dag\n"
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {name.split(".")[0] for name in json.loads(result.stdout.strip().splitlines()[-1])}
    assert not loaded & {"tensorflow", "tfx", "keras"}


# components/: one folder per stage, and beside them only what every stage shares.
COMPONENT_STAGES = {"data", "validation", "transform", "training", "export", "evaluation",
                    "push", "tflite", "monitoring", "scoring"}
SHARED_BY_STAGES = {"__init__.py", "contract.py", "console.py", "uris.py"}
# Names that mean the same job wherever they appear, as TFX's own components use them.
CONVENTIONAL_MODULES = {"__init__.py", "__main__.py", "component.py", "executor.py",
                        "config.py"}


def test_components_holds_a_folder_per_stage_and_the_shared_modules():
    entries = {entry for entry in os.listdir(os.path.join(REPO_ROOT, "components"))
               if not entry.startswith((".", "__pycache__"))}
    assert entries == COMPONENT_STAGES | SHARED_BY_STAGES
    for stage in COMPONENT_STAGES:  # each says what it holds
        with open(os.path.join(REPO_ROOT, "components", stage, "__init__.py")) as init:
            assert ast.get_docstring(ast.parse(init.read())), stage


def test_no_two_modules_share_a_name():
    """A module's name says its job: two files of one name are two jobs a reader would
    confuse (`warmup.py` writing the file and `warmup.py` replaying it)."""
    seen = {}
    for package in ("components", "pipeline", "serving"):
        for directory, _, files in os.walk(os.path.join(REPO_ROOT, package)):
            for name in files:
                if name.endswith(".py") and name not in CONVENTIONAL_MODULES:
                    seen.setdefault(name, []).append(os.path.relpath(
                        os.path.join(directory, name), REPO_ROOT))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
