"""The package's layers keep one direction of imports, and no module reaches another's private names.

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

#: Folders outside the package, and which layers they must not import.
FORBIDDEN_OUTSIDE = {"dags": {"dashboard"}, "plugins": {"tasks"}}


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
    """The layer of one of our modules (``include.backup_integrity.<layer>...``), else None."""
    if not module.startswith(PACKAGE + "."):
        return None
    return module[len(PACKAGE) + 1 :].split(".")[0]


def violations(root: Path) -> list[str]:
    """Every broken rule under ``root`` (the repository), one message each."""
    found: list[str] = []
    package_dir = root.joinpath(*PACKAGE.split("."))
    for path in sorted(package_dir.rglob("*.py")):
        where = path.relative_to(root)
        here = module_name(path, root)
        layer = layer_of(here)
        if layer is not None and layer not in ALLOWED:
            found.append(f"{where}: layer {layer!r} is not in the layer map (add it to ALLOWED and the docs)")
            continue
        for imported in imports_of(path, root):
            target = f"{imported.module}.{imported.name}" if imported.name else imported.module
            other = layer_of(target)
            if other is None:
                continue
            if layer is None:  # the package's own __init__ imports nothing of its layers
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
    for folder, forbidden in FORBIDDEN_OUTSIDE.items():
        for path in sorted(root.joinpath(folder).rglob("*.py")):
            for imported in imports_of(path, root):
                target = f"{imported.module}.{imported.name}" if imported.name else imported.module
                other = layer_of(target)
                if other in forbidden:
                    found.append(
                        f"{path.relative_to(root)}:{imported.line}: {folder}/ imports {target}; "
                        f"rule: {folder}/ never imports {other}"
                    )
    return found


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
            "dags/dag.py:1: dags/ imports include.backup_integrity.dashboard.app.create_app; "
            "rule: dags/ never imports dashboard",
        ),
        (
            "plugins/plugin.py",
            "import include.backup_integrity.tasks.select\n",
            "rule: plugins/ never imports tasks",
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
        "plugins imports tasks",
    ],
)
def test_the_check_names_the_file_the_line_and_the_rule(tree, relative, text, expected):
    write(tree, relative, text)
    broken = violations(tree)
    assert len(broken) == 1, broken
    assert expected in broken[0]
