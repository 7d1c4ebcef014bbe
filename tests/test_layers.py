"""The code's layers import one way (docs/design.md §9), checked by parsing every import:

    utils/                       imports nothing of the project
    models/, datasets/           import utils/ only (not each other)
    inference/                   imports utils/, models/, datasets/
    training/                    imports the above
    entry scripts, scripts/, benchmarks/    anything

and nowhere is a project module imported inside a function, and no import cycle exists."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('utils', 'models', 'datasets', 'inference', 'training')
ALLOWED = {
    'utils': set(),
    'models': {'utils'},
    'datasets': {'utils'},
    'inference': {'utils', 'models', 'datasets'},
    'training': {'utils', 'models', 'datasets', 'inference'},
}
TOP_MODULES = ('train_liif', 'test', 'demo', 'viewer')


def project_files() -> list[Path]:
    """Every Python file of the project that is not a test."""
    files = [ROOT / f'{m}.py' for m in TOP_MODULES]
    for folder in (*PACKAGES, 'scripts', 'benchmarks'):
        files += sorted((ROOT / folder).glob('*.py'))
    return files


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix('')
    parts = rel.parts[:-1] if rel.name == '__init__' else rel.parts
    return '.'.join(parts)


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported project module, whether inside a function, line) for every import in path."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')[:len(package.split('.')) - child.level + 1]
                    base = '.'.join(base + ([child.module] if child.module else []))
                else:
                    base = child.module or ''
                # `from pkg import mod` imports pkg.mod when mod is a module of pkg.
                targets = [f'{base}.{a.name}' if (ROOT / base.replace('.', '/') / f'{a.name}.py').is_file()
                           else base for a in child.names]
            for t in targets:
                if t.split('.')[0] in PACKAGES + TOP_MODULES:
                    found.append((t, in_function, child.lineno))
            visit(child, inside)

    visit(tree, False)
    return found


def test_the_layer_rules_cover_every_package():
    assert {p.name for p in ROOT.iterdir() if (p / '__init__.py').is_file()} == set(PACKAGES)


@pytest.mark.parametrize('path', project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_only(path):
    layer = module_name(path).split('.')[0]
    for target, _, line in imports(path):
        top = target.split('.')[0]
        if layer in ALLOWED and top != layer:
            assert top in ALLOWED[layer], f'{path.name}:{line} ({layer}/) imports {target}: not allowed'


@pytest.mark.parametrize('path', project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_project_import_inside_a_function(path):
    inside = [(t, line) for t, in_function, line in imports(path) if in_function]
    assert not inside, f'{path.name}: project imports inside functions: {inside}'


def test_no_import_cycle():
    graph = {module_name(p): {t for t, _, _ in imports(p)} for p in project_files()}
    # A `from package import name` edge points at the package's __init__.
    graph = {m: {t if t in graph else t.rpartition('.')[0] for t in targets} - {m} for m, targets in graph.items()}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def walk(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else [m, t]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if t in graph and state.get(t) is None:
                walk(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            walk(m, [m])


def test_a_violation_is_caught(tmp_path, monkeypatch):
    """The checker itself: a bottom-layer file importing a model, inside a function, is flagged."""
    bad = ROOT / 'utils' / '_layer_probe.py'
    bad.write_text('def f():\n    import models\n    return models\n')
    try:
        found = imports(bad)
        assert found == [('models', True, 2)]
        with pytest.raises(AssertionError, match='not allowed'):
            test_imports_go_down_only(bad)
        with pytest.raises(AssertionError, match='inside functions'):
            test_no_project_import_inside_a_function(bad)
    finally:
        bad.unlink()
