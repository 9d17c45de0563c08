"""The packages' imports run one way, down the layers of docs/design.md.

Every ``import ringscope.x`` and ``from ringscope.x import ...`` in the source (at the
top of a module, inside a function, or under ``TYPE_CHECKING``: each is a dependency)
is read with :mod:`ast`; a module may import its own package and the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ringscope

ROOT = Path(ringscope.__file__).parent

#: Each part of the package and the parts it may import (besides itself). The
#: modules at the top of the package (model, errors, contract, settings, csvsafe)
#: are the floor; policy sits on the algorithms it configures.
FLOOR = {"model", "errors", "contract", "settings", "csvsafe", "__init__"}
MAY_IMPORT: dict[str, set[str]] = {
    **{m: FLOOR for m in FLOOR},
    "algorithms": FLOOR,
    "policy": FLOOR | {"algorithms"},
    "graphs": FLOOR | {"algorithms"},
    "loaders": FLOOR | {"algorithms", "policy", "graphs"},
    "jobs": FLOOR | {"algorithms", "policy", "graphs", "loaders"},
    "engines": FLOOR | {"algorithms", "policy", "graphs", "loaders", "jobs"},
    "api": FLOOR | {"algorithms", "policy", "graphs", "loaders", "jobs"},
    "cli": FLOOR | {"algorithms", "policy", "graphs", "loaders", "jobs", "engines", "api"},
    "__main__": {"cli"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported part of ringscope) of every import of ringscope in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "ringscope":  # a module of the package, or a name of its own
                names = [
                    f"ringscope.{a.name}"
                    if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").is_file()
                    else "ringscope.__init__"
                    for a in node.names
                ]
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("ringscope.")]
    return found


def backward_imports() -> list[str]:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        part = _part(path)
        allowed = MAY_IMPORT.get(part)
        assert allowed is not None, f"{path}: a part of ringscope the layers do not name"
        for line, target in imports_of(path):
            if target != part and target not in allowed:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {part} imports {target}")
    return wrong


def test_imports_run_down_the_layers() -> None:
    assert backward_imports() == []


def test_the_check_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    """The reader finds imports in functions and ``from ringscope import x`` forms."""
    module = tmp_path / "m.py"
    module.write_text(
        "from ringscope import cli\n"
        "def f():\n"
        "    from ringscope.loaders.pipeline import load_export\n"
        "    import ringscope.api.app\n"
    )
    assert imports_of(module) == [(1, "cli"), (3, "loaders"), (4, "api")]
