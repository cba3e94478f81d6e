"""Which code a pipeline stage runs, as a content hash that Snakemake can compare.

Snakemake's own `code` rerun trigger sees only a `script:` file, and by its modification time:
a change in the package a stage calls (where all the logic is) reruns nothing, while a fresh
checkout or copy, which touches every file, reruns everything. Instead each rule passes
`stage_hash(script)` as a param: the sha256 of the script's text and of every `esforget`
module it reaches through imports, followed transitively (lazy imports inside functions
included). With the `params` trigger, a stage then reruns exactly when code it runs changed.

Why by hand: the import graph of our own package is a few lines of `ast`; no library offers
a content hash of the modules a script reaches.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "esforget"


def imported_modules(source: str, package_dir: Path) -> set[str]:
    """Dotted names of the package's modules that `source` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from esforget import es` names a module; `from esforget.core.files import write_json` a name in one
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == PACKAGE and module_file(n, package_dir))
    return found


def module_file(name: str, package_dir: Path) -> Path | None:
    """The file of module `name` (`esforget.tasks` → tasks/__init__.py), or None."""
    parts = name.split(".")[1:]
    if not parts:  # the package itself
        return package_dir / "__init__.py"
    relative = Path(*parts)
    for candidate in (package_dir / relative.with_suffix(".py"), package_dir / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def stage_modules(script: str | Path, package_dir: Path) -> list[Path]:
    """Every package module file `script` reaches through imports, sorted."""
    seen: dict[str, Path] = {}
    todo = imported_modules(Path(script).read_text(), package_dir)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = module_file(name, package_dir)
        parents = [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)]  # packages run their __init__
        todo |= {p for p in parents if p not in seen and module_file(p, package_dir)}
        todo |= imported_modules(seen[name].read_text(), package_dir) - seen.keys()
    return sorted(set(seen.values()))


def stage_hash(script: str | Path, package_dir: str | Path | None = None) -> str:
    """sha256 of `script` and the package modules it reaches (paths relative, text as bytes)."""
    if package_dir is None:
        import esforget

        package_dir = Path(esforget.__file__).parent
    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for file in [Path(script), *stage_modules(script, package_dir)]:
        name = file.name if file == Path(script) else str(file.relative_to(package_dir))
        digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def canonical(value):
    """`value` with every mapping's keys sorted, recursively. Snakemake compares params by their
    repr, key order included: passing a config in this form means reordering the keys of a YAML
    file (or writing it back with a YAML library) reruns nothing."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value
