"""The package's modules form no import cycle, and the network (model/) does not reach into the
synthetic world (world/). Imports inside functions count: a cycle hidden in a function is still
one module needing the other."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / 'hydranet_ros'


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: modules of the package it imports}, from the source (top-level and function-level)."""
    modules = {}
    for path in root.rglob('*.py'):
        name = '.'.join(path.relative_to(root.parent).with_suffix('').parts)
        modules[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
            for target in names:
                # a package's own __init__ importing its children is not a cycle
                if target in modules and target != module and not module.startswith(target + '.') \
                        and target != root.name:
                    graph[module].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert find_cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycle_in_the_package():
    cycles = find_cycles(import_graph())
    assert cycles == [], 'import cycles: ' + '; '.join(' <-> '.join(c) for c in cycles)


def test_the_model_does_not_import_the_world():
    graph = import_graph()
    offenders = sorted(f'{m} -> {t}' for m, targets in graph.items() if m.startswith('hydranet_ros.model')
                       for t in targets if t.startswith('hydranet_ros.world'))
    assert offenders == []


def test_the_development_layout_names_every_module():
    layout = (PACKAGE.parent / 'docs' / 'DEVELOPMENT.md').read_text().split('## Build')[0]
    missing = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob('*.py')
                     if p.name != '__init__.py' and f'{p.name}`' not in layout)
    assert missing == [], f'docs/DEVELOPMENT.md layout does not name {missing}'
