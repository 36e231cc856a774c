"""The tree shows the stages (docs/architecture.md): who may import whom, and the size of every room.

Read from the source with ``ast`` (imports inside functions count too: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path
from conftest import REPO

PACKAGE = REPO / "bids_factory"

# Lowest first. A module may import its own room and any room of a LOWER rank, never a higher one: the
# flow discover -> extract -> checks/plan -> write -> ehr -> finalize reads top to bottom in this list.
# The same table is drawn in docs/architecture.md; keep both equal (a test below checks).
RANKS = {
    "__init__": 0, "errors": 0, "dates": 0, "tsv": 0, "resources": 0, "bidsschema": 0,
    "dicom": 1,
    "privacy": 2,
    "model": 3,
    "config": 4,
    "discover": 5,
    "extract": 6,
    "checks": 7,
    "plan": 8,
    "write": 9,
    "ehr": 10,
    "finalize": 11,
    "report": 12,
    "hpc": 13,
    "run": 14,
    "cli": 15,
    "__main__": 16,
}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def _room(module: str) -> str:
    """The room of ``bids_factory.x.y``: the sub-package ``x``, or the top-level module ``x``."""
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bids_factory")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if base.startswith("bids_factory"):
                found |= {f"{base}.{a.name}" for a in node.names} if base == "bids_factory" else {base}
    return found


def _edges() -> set[tuple[str, str, str]]:
    """(room, imported room, importing module) for every import between two rooms."""
    edges = set()
    for module, path in _modules().items():
        for target in _imports(module, path):
            if target.count(".") == 0 or target.split(".")[1] == "__version__":
                continue
            if (a := _room(module)) != (b := _room(target)):
                edges.add((a, b, module))
    return edges


def test_every_room_has_a_rank_and_the_tree_has_the_promised_shape():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert sorted((set(top) | set(packages)) - set(RANKS)) == [], "rooms without a rank"
    assert len(packages) >= 8 and len(top) <= 8, (packages, top)


def test_stages_import_only_downward():
    upward = sorted(f"{module} imports {b} (rank {RANKS[b]} > {RANKS[a]})"
                    for a, b, module in _edges() if RANKS[b] > RANKS[a])
    assert upward == []


def test_no_import_cycle_between_rooms():
    graph: dict[str, set[str]] = {}
    for a, b, _ in _edges():
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert sorted(room for room in graph if reaches(room, room, {room})) == []


def test_no_module_over_400_lines():
    assert {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400} == {}


def test_the_architecture_page_lists_every_room_in_rank_order():
    page = "\n".join(line.split(" | ")[0] for line in (PACKAGE.parent / "docs" / "architecture.md").read_text().splitlines()
                     if line.startswith("| `"))  # the first column of the table of rooms
    ordered = [room for room in sorted(RANKS, key=RANKS.get) if not room.startswith("__")]
    positions = [page.find(f"`{room}" + ("/`" if (PACKAGE / room).is_dir() else ".py`")) for room in ordered]
    assert all(p >= 0 for p in positions), [r for r, p in zip(ordered, positions) if p < 0]
    assert positions == sorted(positions), "docs/architecture.md lists the rooms out of rank order"


def test_the_rule_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: an import from a stage to a later one is found (lazy, inside a function)."""
    fake = tmp_path / "bids_factory"
    (fake / "discover").mkdir(parents=True)
    (fake / "write").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "discover" / "__init__.py").write_text("")
    (fake / "write" / "__init__.py").write_text("")
    (fake / "discover" / "visits.py").write_text("def f():\n    from ..write import dataset_writer\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert ("discover", "write", "bids_factory.discover.visits") in _edges()


def _rooms_without_unit_tests(package: Path, unit: Path) -> list[str]:
    """Sub-packages without their tests/unit/<room>/test_*.py, and folders of tests/unit that are no room."""
    rooms = {p.parent.name for p in package.glob("*/__init__.py")}
    folders = {p.name for p in unit.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    return sorted(f"no tests/unit/{room}/test_*.py" for room in rooms if not any((unit / room).glob("test_*.py"))) + \
        sorted(f"tests/unit/{folder}/ tests no sub-package" for folder in folders - rooms)


def test_the_unit_tests_mirror_the_package(tmp_path):
    assert _rooms_without_unit_tests(PACKAGE, REPO / "tests" / "unit") == []
    fake, unit = tmp_path / "bids_factory", tmp_path / "unit"  # the check itself: a missing or stray folder
    for room in ("discover", "write"):
        (fake / room).mkdir(parents=True)
        (fake / room / "__init__.py").write_text("")
    (unit / "discover").mkdir(parents=True)
    (unit / "discover" / "test_visits.py").write_text("")
    (unit / "utils").mkdir()
    assert _rooms_without_unit_tests(fake, unit) == ["no tests/unit/write/test_*.py",
                                                     "tests/unit/utils/ tests no sub-package"]
