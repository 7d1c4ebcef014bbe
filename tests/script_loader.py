"""Import the project's top-level scripts (test.py, scripts/*.py) in tests by file path:
`import test` would find Python's own `test` package, and scripts/ is not a package."""
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str) -> ModuleType:
    """Execute ROOT/relative_path as a module called `name` and return it."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
