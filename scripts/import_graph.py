"""Print the shape of the import graph of sealcheck.core and sealcheck.gui, read from source.

    python scripts/import_graph.py [--edges] [--repo CHECKOUT]

For each package: how many modules it has, how many import arrows join them, the longest
import chain (its depth, counted in modules, and the chain itself), the import cycles
(each strongly connected group of modules, with one loop through it), the same figures
with each top-level subpackage as one node, and the imports of project modules made
inside functions. Nothing is imported: the files are parsed with
``ast``, so the numbers are the same with or without Qt installed. Every import counts,
at module level or inside a function, because an import hidden in a function still ties
the two modules together (it is how cycles are usually closed).

One node per file (a package's ``__init__.py`` is the package); ``from P import m`` is an
arrow to the module ``P.m`` when that module exists, else to ``P``. Arrows to the other
package (gui -> core) are left out of each package's own graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"sealcheck.core": "core", "sealcheck.gui": "gui"}


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)
    in_function: list[tuple[int, str]] = field(default_factory=list)


def discover(repo: Path) -> dict[str, Module]:
    mods: dict[str, Module] = {}
    for root, folder_name in PACKAGES.items():
        folder = repo / folder_name
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join([root, *parts])
            mods[name] = Module(name, path, is_package)
    return mods


def _absolute(mod: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.name.split(".")
    if not mod.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _walk(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(tree):
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, in_function
        yield from _walk(child, inside)


def read_imports(mods: dict[str, Module]) -> None:
    for mod in mods.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))
        for node, in_function in _walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(mod, node)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            for target in targets:
                # "import a.b.c" names a.b.c; keep the longest known module prefix.
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod.name:
                    mod.imports.add(target)
                    if in_function and (node.lineno, target) not in mod.in_function:
                        mod.in_function.append((node.lineno, target))


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group))
    return groups


def one_loop(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest loop from the group's first module back to itself."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    nxt.append(child)
        frontier = nxt
    return group


def longest_chain(nodes: list[str], edges: dict[str, set[str]]) -> list[str]:
    """The longest import chain, a cycle's modules counted once (on the condensed graph)."""
    groups = strongly_connected(nodes, edges)
    group_of = {m: i for i, g in enumerate(groups) for m in g}
    # Tarjan emits groups in reverse topological order: imported groups come first.
    best: dict[int, list[str]] = {}
    for i, group in enumerate(groups):
        below = {group_of[c] for m in group for c in edges[m]} - {i}
        tail = max((best[j] for j in below), key=len, default=[])
        best[i] = [group[0] if len(group) == 1 else "{" + ", ".join(group) + "}", *tail]
    return max(best.values(), key=len, default=[])


def report(root: str, mods: dict[str, Module], repo: Path, show_edges: bool) -> None:
    own = sorted(m for m in mods if m == root or m.startswith(root + "."))
    edges = {m: {t for t in mods[m].imports if t in own} for m in own}
    arrows = sum(len(v) for v in edges.values())
    cycles = [g for g in strongly_connected(own, edges) if len(g) > 1 or g[0] in edges[g[0]]]
    chain = longest_chain(own, edges)
    hidden = [(m, line, t) for m in own for line, t in mods[m].in_function if t in mods]

    def short(name: str) -> str:
        return name.removeprefix(root + ".") if name != root else name

    def short_group(name: str) -> str:
        if not name.startswith("{"):
            return short(name)
        return "{" + ", ".join(short(m) for m in name[1:-1].split(", ")) + "}"

    print(f"{root}")
    print(f"  modules:        {len(own)}")
    print(f"  import arrows:  {arrows}")
    print(f"  depth:          {len(chain)} ({' -> '.join(short_group(m) for m in chain)})")
    print(f"  cycles:         {len(cycles)}")
    for g in cycles:
        print(f"    {' -> '.join(short(m) for m in one_loop(g, edges))}")

    # The same graph with each top-level package (or module) of the root as one node.
    def top(name: str) -> str:
        return ".".join(name.split(".")[:3])

    tops = sorted({top(m) for m in own})
    top_edges: dict[str, set[str]] = {t: set() for t in tops}
    for m in own:
        top_edges[top(m)] |= {top(t) for t in edges[m]} - {top(m)}
    top_chain = longest_chain(tops, top_edges)
    top_cycles = [g for g in strongly_connected(tops, top_edges) if len(g) > 1]
    print(
        f"  by package:     {len(tops)} nodes, {sum(len(v) for v in top_edges.values())} arrows,"
        f" depth {len(top_chain)} ({' -> '.join(short_group(m) for m in top_chain)}),"
        f" {len(top_cycles)} cycles"
    )
    print(f"  imports of project modules inside functions: {len(hidden)}")
    for m, line, t in hidden:
        rel = mods[m].path.relative_to(repo)
        print(f"    {rel}:{line} -> {t}")
    if show_edges:
        for m in own:
            for t in sorted(edges[m]):
                print(f"    edge {short(m)} -> {short(t)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edges", action="store_true", help="also list every import arrow")
    ap.add_argument(
        "--repo", type=Path, default=REPO, help="the checkout to read (default: this one)"
    )
    args = ap.parse_args(argv)
    mods = discover(args.repo)
    read_imports(mods)
    for root in PACKAGES:
        report(root, mods, args.repo, args.edges)
    return 0


if __name__ == "__main__":
    sys.exit(main())
