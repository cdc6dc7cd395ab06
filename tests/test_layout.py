"""The package's layout: the method at the top of lab4/ with the few modules every job shares, one
sub-package per other job (at most six), imports pointing one way (from the shared modules, data and the
model up to training, then to the jobs above it), no import cycle, imports inside functions only where
they keep start-up light, no module too long to read, and `python -m lab4 --help` without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lab4"
MAX_LINES = 450
MAX_SUBPACKAGES = 6
# What lab4/ holds at its top level, by layer, lowest first. A module or package imports only from its
# own layer or a lower one; the jobs import each other only along JOB_ARROWS.
LAYERS: dict[str, tuple[str, ...]] = {
    # every job uses these: files, paths, the config, the device, the metrics, the heavy commands' names
    "shared": ("lab4", "lab4.io", "lab4.workspace", "lab4.commands", "lab4.config", "lab4.device", "lab4.metrics",
               "lab4.distributed"),
    "data": ("lab4.data",),
    "model": ("lab4.layers", "lab4.model", "lab4.template"),
    # run folders: their layout, checkpoints, rules and tables (lab4/runs/)
    "run folders": ("lab4.runs",),
    # the method's training and testing: the template's Trainer.py and Tester.py, and Kaggle's score
    "method": ("lab4.step", "lab4.schedules", "lab4.rollout", "lab4.evaluate", "lab4.train", "lab4.predict",
               "lab4.submission", "lab4.scoring", "lab4.export"),
    # the other jobs, one sub-package each
    "jobs": ("lab4.sweep", "lab4.report", "lab4.synth", "lab4.speed"),
    # the command line, over them all
    "command line": ("lab4.cli", "lab4.__main__"),
}
# The arrows between the jobs, and why.
JOB_ARROWS = {
    ("lab4.speed", "lab4.sweep"): "bench --whole-run trains as the training notebook does (lab4.sweep.experiment)",
    ("lab4.speed", "lab4.synth"): "the GPU check makes its own synthetic data",
}
# Where a lab4 import may sit inside a function, and why: each keeps a light path light.
IN_FUNCTION_ALLOWED = {
    "lab4.speed.bench.whole_run": "--whole-run reads its runs back through lab4.sweep.experiment (pandas); the "
                                  "rest of the bench and the GPU check run without pandas",
    "lab4.cli": "each command loads its module when it runs, so --help and the light commands load no torch",
    "lab4.report.figures.comparisons": "the oracle z modes come from lab4.rollout (torch); the figures stay "
                                       "torch-free",
    "lab4.report.book": "figure 8 loads lab4.report.zsampling (torch) only when drawn; `lab4 table` stays "
                        "torch-free",
}


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported lab4 module, line, inside a function) for every import in lab4, at any
    depth; `if TYPE_CHECKING:` blocks (never run) aside. Importing a submodule runs its package's
    __init__ first, so that counts as importing the package too."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for module, (path, is_package) in mods.items():
        package = module if is_package else module.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if _type_checking(child):
                    continue
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[:len(package.split(".")) - child.level + 1]
                        base = ".".join(parts + ([base] if base else []))
                    names = [base] + [f"{base}.{alias.name}" for alias in child.names]
                for name in names:
                    target = owner(name) if name.split(".")[0] == "lab4" else None
                    while target:
                        if target != module and not module.startswith(target + "."):
                            found.append((module, target, child.lineno, inside))
                        target = target.rpartition(".")[0] if "." in target else None
                visit(child, inside)

        visit(ast.parse(path.read_text()), False)
    return found


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for importer, imported, _, _ in imports():
        graph[importer].add(imported)
    # Tarjan's strongly connected components: any with two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles among lab4 modules: {cycles}"


def top_level(module: str) -> str:
    """The top-level module or sub-package of lab4 that `module` belongs to."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    names = list(LAYERS)
    for index, name in enumerate(names):
        if top_level(module) in LAYERS[name]:
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py's LAYERS: place it there")


def test_the_top_level_holds_the_method_the_shared_modules_and_at_most_six_subpackages() -> None:
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert len(subpackages) <= MAX_SUBPACKAGES, f"{len(subpackages)} sub-packages of lab4: {subpackages}"
    placed = {name for names in LAYERS.values() for name in names}
    present = {top_level(m) for m in modules()}
    assert present == placed, (f"top level of lab4 not as LAYERS places it: unplaced {sorted(present - placed)}, "
                               f"gone {sorted(placed - present)}")


def test_imports_point_one_way_up_the_layers() -> None:
    wrong = set()
    for importer, imported, line, _ in imports():
        if top_level(importer) == top_level(imported):
            continue
        up, down = layer_of(importer), layer_of(imported)
        if down > up or (down == up == list(LAYERS).index("jobs")
                         and (top_level(importer), top_level(imported)) not in JOB_ARROWS):
            wrong.add(f"{importer}:{line} imports {imported}")
    assert not wrong, "imports against the layers (LAYERS, JOB_ARROWS):\n" + "\n".join(sorted(wrong))


def test_imports_inside_functions_only_where_allowed() -> None:
    stray = sorted({f"{m}:{line} imports {t}" for m, t, line, inside in imports()
                    if inside and m not in IN_FUNCTION_ALLOWED and t != "lab4"})
    assert not stray, "imports inside functions (move them to the top, or say why in IN_FUNCTION_ALLOWED):\n" \
        + "\n".join(stray)


def test_no_module_is_too_long() -> None:
    long = {m: n for m, (path, _) in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_the_training_loop_reads_in_functions_of_at_most_60_lines() -> None:
    tree = ast.parse((PACKAGE / "train.py").read_text())
    long = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60}
    assert not long, f"functions of lab4/train.py over 60 lines: {long}"


def test_the_step_opens_with_the_templates_training_step_and_maps_the_templates_names() -> None:
    tree = ast.parse((PACKAGE / "step.py").read_text())
    functions = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert functions[0] == "training_one_step", functions
    doc = ast.get_docstring(tree) or ""
    for name in ("training_one_step", "val_one_step", "kl_annealing", "teacher_forcing_ratio_update",
                 "Generate_PSNR", "training_stage", "load_checkpoint", "save", "eval"):
        assert f"  {name} " in doc, f"lab4/step.py's docstring does not map the template's {name}"


def test_help_loads_no_torch() -> None:
    code = ("import runpy, sys\nsys.argv = ['lab4', '--help']\n"
            "try:\n    runpy.run_module('lab4', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("NO-TORCH"), "python -m lab4 --help loads torch"
    assert "sweep" in done.stdout and "report" in done.stdout and "strategies" in done.stdout
