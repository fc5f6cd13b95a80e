"""The package's layers keep one direction of imports, and no module reaches another's private names.

Outside the package, every Python file but the tests is checked too: ``dags/`` imports only
``tasks`` of ours, ``plugins/`` only ``dashboard``, and nothing else imports either of them but
the dev tooling listed in ``ALLOWED_OUTSIDE``. An import of the package root itself
(``from include import backup_integrity``) names no layer and is rejected everywhere.

Every import is found (``ast``), wherever it is written: at the top, inside a function,
under ``TYPE_CHECKING``. A failure names the file, the line and the rule it breaks;
``docs/architecture.md`` draws the picture.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "include.backup_integrity"

#: What each layer may import of ours besides itself.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "config": {"domain"},
    "stores": {"domain", "config"},
    "catalog": {"domain", "config"},
    "notify": {"catalog", "domain", "config"},
    "tasks": {"domain", "config", "stores", "catalog", "notify"},
    "dashboard": {"domain", "config", "catalog"},
}

#: What the DAG files and the plugin may import of ours: only ``dags/`` imports ``tasks``, only
#: ``plugins/`` imports ``dashboard``, and each imports nothing else of ours.
ONLY = {"dags": "tasks", "plugins": "dashboard"}

#: Layers that only ``dags/`` and ``plugins/`` may import from outside the package.
TOP_LAYERS = {layer: folder for folder, layer in ONLY.items()}

#: Dev tooling that legitimately drives a top layer, file by file. Anything else outside the
#: package that imports ``tasks`` or ``dashboard`` fails, so adding a file here is a decision.
ALLOWED_OUTSIDE: dict[str, set[str]] = {
    # The dashboard's benchmark renders its pages and times its queries on a large synthetic
    # catalog (scripts/bench.sh); it never serves them.
    "devtools/bench_dashboard.py": {"dashboard"},
}

#: What an import of the package root (or of ``include`` itself) resolves to: no layer, so
#: it is rejected (``from include import backup_integrity`` would reach every layer unchecked).
ROOT = "the package root"

#: Folders never scanned: the tests (which drive every layer) and what is not ours.
NOT_SCANNED = {"tests"}


@dataclass(frozen=True)
class Imported:
    """One name (or module) imported by a module, where it was imported."""

    module: str
    name: str | None
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Imported]:
    """Every import in the file, relative ones resolved, each imported name on its own."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[Imported] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Imported(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [Imported(base, alias.name, node.lineno) for alias in node.names]
    return found


def private_attribute_uses(path: Path, root: Path) -> list[tuple[str, str, int]]:
    """``alias._name`` where ``alias`` is one of our modules imported under a name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            for alias in node.names:
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE) and alias.asname:
                    modules[alias.asname] = alias.name
    uses = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and is_private(node.attr)
        ):
            uses.append((modules[node.value.id], node.attr, node.lineno))
    return uses


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def layer_of(module: str) -> str | None:
    """The layer of one of our modules (``include.backup_integrity.<layer>...``), ROOT for the
    package itself or what contains it (``include``, ``include.backup_integrity``, a ``*`` of
    either), else None."""
    parts = module.split(".")
    package = PACKAGE.split(".")
    if parts[: len(package)] == package:
        rest = parts[len(package) :]
        return ROOT if not rest or rest[0] == "*" else rest[0]
    bare = parts[:-1] if parts[-1] == "*" else parts
    return ROOT if bare == package[: len(bare)] else None


def top_level(root: Path) -> list[Path]:
    """The repository's own folders and modules; hidden ones (``.venv``, ``.git``) are not ours."""
    return [
        entry
        for entry in sorted(root.iterdir())
        if not entry.name.startswith(".") and (entry.suffix == ".py" or entry.is_dir())
    ]


def source_files(root: Path) -> list[Path]:
    """Every Python file of the repository outside the package and the tests, whatever its folder."""
    package_dir = root.joinpath(*PACKAGE.split("."))
    found: list[Path] = []
    for entry in top_level(root):
        if entry.name in NOT_SCANNED:
            continue
        files = sorted(entry.rglob("*.py")) if entry.is_dir() else [entry]
        found += [path for path in files if package_dir not in path.parents]
    return found


def our_roots(root: Path) -> set[str]:
    """The first names of our imports (``include``, ``devtools``, ``dags``, ``tests``...)."""
    return {
        entry.stem
        for entry in top_level(root)
        if entry.is_file() or next(entry.rglob("*.py"), None) is not None
    }


def violations(root: Path, allowed_outside: dict[str, set[str]] = ALLOWED_OUTSIDE) -> list[str]:
    """Every broken rule under ``root`` (the repository), one message each."""
    found: list[str] = []
    ours = our_roots(root)
    package_dir = root.joinpath(*PACKAGE.split("."))
    for path in sorted(package_dir.rglob("*.py")):
        where = path.relative_to(root)
        here = module_name(path, root)
        layer = layer_of(here)
        if layer not in (ROOT, *ALLOWED):
            found.append(f"{where}: layer {layer!r} is not in the layer map (add it to ALLOWED and the docs)")
            continue
        for imported in imports_of(path, root):
            target = f"{imported.module}.{imported.name}" if imported.name else imported.module
            other = layer_of(target)
            if other is None:
                if target.split(".")[0] in ours:
                    found.append(
                        f"{where}:{imported.line}: the package imports {target}; "
                        "rule: the package imports nothing of ours outside itself"
                    )
                continue
            if other == ROOT:
                found.append(root_import(where, imported.line, target))
            elif layer == ROOT:  # the package's own __init__ imports nothing of its layers
                found.append(f"{where}:{imported.line}: the package root imports {target}")
            elif other != layer and other not in ALLOWED[layer]:
                allowed = ", ".join(sorted(ALLOWED[layer])) or "nothing of ours"
                found.append(
                    f"{where}:{imported.line}: {layer} imports {target} ({other}); "
                    f"rule: {layer} may import {allowed}"
                )
            if imported.name and is_private(imported.name) and imported.module != here:
                found.append(
                    f"{where}:{imported.line}: imports the private name {imported.name} of "
                    f"{imported.module}; rule: promote what is shared to a public function"
                )
        for module, attribute, line in private_attribute_uses(path, root):
            if module != here:
                found.append(
                    f"{where}:{line}: uses the private name {attribute} of {module}; "
                    "rule: promote what is shared to a public function"
                )
    for path in source_files(root):
        where = path.relative_to(root)
        folder = where.parts[0]
        for imported in imports_of(path, root):
            target = f"{imported.module}.{imported.name}" if imported.name else imported.module
            if target.split(".")[0] not in ours:
                continue
            other = layer_of(target)
            if other == ROOT:
                found.append(root_import(where, imported.line, target))
            elif folder in ONLY:
                if other != ONLY[folder]:
                    found.append(
                        f"{where}:{imported.line}: {folder}/ imports {target} ({other or 'not a layer'}); "
                        f"rule: {folder}/ imports only {ONLY[folder]} of ours"
                    )
            elif other in TOP_LAYERS and other not in allowed_outside.get(where.as_posix(), set()):
                found.append(
                    f"{where}:{imported.line}: {folder}/ imports {target} ({other}); "
                    f"rule: only {TOP_LAYERS[other]}/ imports {other} "
                    "(dev tooling that drives it is listed in ALLOWED_OUTSIDE)"
                )
    return found


def root_import(where: Path, line: int, target: str) -> str:
    return (
        f"{where}:{line}: imports {target} ({ROOT}); rule: import a layer's modules "
        f"({PACKAGE}.<layer>...), so that the layer is checked"
    )


def test_every_import_of_the_package_follows_the_layers():
    broken = violations(REPO)
    assert not broken, "imports against the layers:\n" + "\n".join(broken)


# ----------------------------------------------------------------------------- the check itself


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small repository laid out as this one, every import in it allowed."""
    for layer in ALLOWED:
        write(tmp_path, f"include/backup_integrity/{layer}/__init__.py", "")
    write(tmp_path, "include/backup_integrity/__init__.py", "")
    write(tmp_path, "include/backup_integrity/domain/records.py", "PASSED = 'passed'\n")
    write(
        tmp_path,
        "include/backup_integrity/catalog/store.py",
        "from include.backup_integrity.domain.records import PASSED\nfrom . import other\n",
    )
    write(tmp_path, "dags/dag.py", "from include.backup_integrity.tasks import select\n")
    write(tmp_path, "plugins/plugin.py", "from include.backup_integrity.dashboard import app\n")
    write(tmp_path, "include/__init__.py", "")
    write(tmp_path, "devtools/__init__.py", "")
    write(tmp_path, "devtools/seed.py", "from include.backup_integrity.catalog import store\n")
    write(tmp_path, "devtools/bench_dashboard.py", "from include.backup_integrity.dashboard import app\n")
    write(tmp_path, "tests/test_x.py", "from include.backup_integrity.tasks import select\nimport include\n")
    write(tmp_path, ".venv/lib/site.py", "import include.backup_integrity\n")
    return tmp_path


def test_the_check_passes_a_tree_that_follows_the_rules(tree):
    assert violations(tree) == []


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        (
            "include/backup_integrity/domain/records.py",
            "from include.backup_integrity.catalog import store\n",
            "include/backup_integrity/domain/records.py:1: domain imports "
            "include.backup_integrity.catalog.store (catalog); rule: domain may import nothing of ours",
        ),
        (
            "include/backup_integrity/domain/records.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from include.backup_integrity.config.settings import Settings\n",
            "include/backup_integrity/domain/records.py:3: domain imports "
            "include.backup_integrity.config.settings.Settings (config)",
        ),
        (
            "include/backup_integrity/stores/s3.py",
            "def f():\n    from ..catalog import store\n",
            "include/backup_integrity/stores/s3.py:2: stores imports include.backup_integrity.catalog.store",
        ),
        (
            "include/backup_integrity/tasks/watchdog.py",
            "from include.backup_integrity.catalog.store import _insert_alert\n",
            "imports the private name _insert_alert of include.backup_integrity.catalog.store",
        ),
        (
            "include/backup_integrity/tasks/watchdog.py",
            "from include.backup_integrity.catalog import store as alerts\nalerts._observe()\n",
            "include/backup_integrity/tasks/watchdog.py:2: uses the private name _observe",
        ),
        (
            "include/backup_integrity/reports/page.py",
            "",
            "layer 'reports' is not in the layer map",
        ),
        (
            "dags/dag.py",
            "from include.backup_integrity.dashboard.app import create_app\n",
            "dags/dag.py:1: dags/ imports include.backup_integrity.dashboard.app.create_app (dashboard); "
            "rule: dags/ imports only tasks of ours",
        ),
        (
            "dags/dag.py",
            "from include.backup_integrity.config.params import trigger_params\n",
            "dags/dag.py:1: dags/ imports include.backup_integrity.config.params.trigger_params (config)",
        ),
        (
            "dags/dag.py",
            "def f():\n    from devtools.seed import store\n",
            "dags/dag.py:2: dags/ imports devtools.seed.store (not a layer); rule: dags/ imports only tasks",
        ),
        (
            "plugins/plugin.py",
            "import include.backup_integrity.tasks.select\n",
            "rule: plugins/ imports only dashboard of ours",
        ),
        (
            "devtools/seed.py",
            "from include.backup_integrity.tasks.select import select_backups\n",
            "devtools/seed.py:1: devtools/ imports include.backup_integrity.tasks.select.select_backups "
            "(tasks); rule: only dags/ imports tasks",
        ),
        (
            "bench/scale.py",
            "from include.backup_integrity.dashboard import app\n",
            "bench/scale.py:1: bench/ imports include.backup_integrity.dashboard.app (dashboard); "
            "rule: only plugins/ imports dashboard",
        ),
        (
            "devtools/bench_dashboard.py",
            "from include.backup_integrity.tasks import select\n",
            "devtools/bench_dashboard.py:1: devtools/ imports include.backup_integrity.tasks.select (tasks)",
        ),
        (
            "tools/new_script.py",
            "import include.backup_integrity.tasks.select\n",
            "tools/new_script.py:1: tools/ imports include.backup_integrity.tasks.select (tasks)",
        ),
        (
            "include/__init__.py",
            "from . import backup_integrity\n",
            "include/__init__.py:1: imports include.backup_integrity (the package root)",
        ),
        (
            "include/backup_integrity/domain/records.py",
            "from include import backup_integrity\n",
            "include/backup_integrity/domain/records.py:1: imports include.backup_integrity "
            "(the package root)",
        ),
        (
            "dags/dag.py",
            "import include.backup_integrity\n",
            "dags/dag.py:1: imports include.backup_integrity (the package root); "
            "rule: import a layer's modules",
        ),
        (
            "scripts/run.py",
            "from include.backup_integrity import *\n",
            "scripts/run.py:1: imports include.backup_integrity.* (the package root)",
        ),
        (
            "include/backup_integrity/catalog/store.py",
            "from devtools.seed import store\n",
            "include/backup_integrity/catalog/store.py:1: the package imports devtools.seed.store",
        ),
    ],
    ids=[
        "domain imports catalog",
        "under TYPE_CHECKING",
        "relative import in a function",
        "private name",
        "private attribute of a module",
        "unknown layer",
        "dags imports dashboard",
        "dags imports config",
        "dags imports devtools",
        "plugins imports tasks",
        "devtools imports tasks",
        "bench imports dashboard",
        "allowlisted for dashboard only",
        "a new folder",
        "include imports the package root",
        "from include import backup_integrity",
        "import include.backup_integrity",
        "star import of the package root",
        "the package imports devtools",
    ],
)
def test_the_check_names_the_file_the_line_and_the_rule(tree, relative, text, expected):
    write(tree, relative, text)
    broken = violations(tree)
    assert len(broken) == 1, broken
    assert expected in broken[0]
