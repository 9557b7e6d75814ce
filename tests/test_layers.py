"""Imports point down: apis/config_ops -> registered parts -> compat/utils; only
tests import helpers."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: top-level part of the package -> layer (higher imports lower)
LAYERS = {'apis': 3, 'config_ops': 3, 'visualization': 2, 'engine': 2, 'models': 2,
          'evaluation': 2, 'datasets': 2, 'compat': 1, 'utils': 1}


def _part(module: str) -> str:
    return module.split('.')[1] if module.count('.') else ''


def _imports(path: Path):
    """The medfm modules a file imports (relative imports resolved)."""
    package = '.'.join(path.relative_to(REPO).with_suffix('').parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith('medfm'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            if module.startswith('medfm'):
                names = [f'{module}.{a.name}' for a in node.names]
                yield from (names if module == 'medfm' else [module])


def test_no_import_runs_up_a_layer():
    wrong = []
    for path in sorted((REPO / 'medfm').rglob('*.py')):
        here = _part('.'.join(path.relative_to(REPO).with_suffix('').parts))
        if here not in LAYERS:
            continue  # medfm/__init__.py registers everything
        for module in _imports(path):
            there = _part(module)
            if LAYERS.get(there, 0) > LAYERS[here]:
                wrong.append(f'{path.relative_to(REPO)} imports {module}')
    assert not wrong, '\n'.join(wrong)
