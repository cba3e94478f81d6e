"""The package is laid out by stage, and its imports point one way: the shared packages (core,
tasks, decoding) import nothing above them, and a stage imports the shared packages and the
stages before it in the DAG, never one after it; the config and versioning, which know about
every stage, sit on top."""

import ast

from tests.shared import REPO

PACKAGE = REPO / "src" / "esforget"
RANK = {
    "core": 0,
    "tasks": 1,
    "decoding": 2,
    "data": 3,
    "base": 4,
    "train": 5,
    "evaluate": 6,
    "analyze": 6,
    "report": 7,
    "config": 8,
    "versioning": 9,
}
"""Where each sub-package stands: the shared ones, then the stages in DAG order, then the top."""


def room(module: str) -> str:
    """`esforget.train.es` → "train"; the package's own `__init__` counts as core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "core"


def imports(path) -> set[str]:
    """The esforget modules a file imports, lazy imports inside functions included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("esforget"):
            found.add(node.module if node.module != "esforget" else f"esforget.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("esforget")}
    return found


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a room to one above it, or to a sibling at its own rank."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            here, there = room(module), room(target)
            if here != there and RANK[there] >= RANK[here]:
                found.append(f"{module} imports {target}")
    return sorted(found)


def package_graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(("esforget", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        graph[dotted] = imports(path)
    return graph


def test_every_module_sits_in_a_room_of_known_rank():
    assert {room(module) for module in package_graph()} == set(RANK)


def test_imports_point_from_later_stages_to_earlier_ones_and_to_the_shared_packages():
    assert wrong_way(package_graph()) == []


def test_an_import_against_the_stream_is_found():
    assert wrong_way({"esforget.train.es": {"esforget.analyze.weight_diff", "esforget.core.tensors"}}) == [
        "esforget.train.es imports esforget.analyze.weight_diff"
    ]
    assert wrong_way({"esforget.evaluate.retention": {"esforget.analyze.weight_diff"}}) == [
        "esforget.evaluate.retention imports esforget.analyze.weight_diff"
    ]
