"""Check sttool's import graph: packages import only the layers below them, and no modules form a cycle.

    python .ci/import_graph.py          # prints the package graph; exit 1 on a violation

Every ``import sttool...`` is counted, inside functions too (a lazy import is still a dependency);
imports under ``if TYPE_CHECKING:`` are not (they exist only for the type checker).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "sttool"
# Bottom to top; a package may import its own layer's modules and any layer below, never above.
LAYERS = [("errors", "progress"), ("runtime",), ("config",), ("models", "data"), ("runs",), ("profiling",),
          ("engine",), ("visualize",), ("bench",), ("cli",)]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "sttool"


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(every sttool module imported, those imported at module level), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    found, at_top = set(), set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sttool") and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("sttool")]
        found.update(names)
        if id(node) in top:
            at_top.update(names)
    return found, at_top


def main() -> int:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    packages: dict[str, set[str]] = defaultdict(set)
    module_edges: dict[str, set[str]] = defaultdict(set)
    problems = []
    for name, path in sorted(modules.items()):
        every, at_top = imports(path)
        for target in every:
            source_pkg, target_pkg = package_of(name), package_of(target)
            if target_pkg != source_pkg and source_pkg != "sttool" and target_pkg != "sttool":
                packages[source_pkg].add(target_pkg)
                if source_pkg in LEVEL and target_pkg in LEVEL and LEVEL[target_pkg] >= LEVEL[source_pkg]:
                    problems.append(f"{name} imports {target}: {target_pkg} is not below {source_pkg}")
        for target in at_top:
            resolved = target if target in modules else target.rsplit(".", 1)[0]
            if resolved in modules and resolved != name:
                module_edges[name].add(resolved)
    for source in sorted(packages):
        print(f"{source} -> {', '.join(sorted(packages[source]))}")
    unknown = sorted(set(packages) - set(LEVEL) - {"__main__"})
    problems += [f"package {p} has no layer in LAYERS" for p in unknown]
    problems += [f"module cycle: {' -> '.join(cycle)}" for cycle in find_cycles(module_edges)]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print("layers (bottom to top): " + " -> ".join("/".join(names) for names in LAYERS))
    print("no cycles, every import points down" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of the module graph by depth-first search (each reported once, from its smallest module)."""
    cycles, seen = [], set()
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    key = tuple(sorted(path))
                    if key not in seen:
                        seen.add(key)
                        cycles.append([*path, start])
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return cycles


if __name__ == "__main__":
    sys.exit(main())
