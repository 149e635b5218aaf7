"""The package's shape: edges nothing in the core imports, no upward imports, no reaching into
another module's private names, and module names that never shadow public functions."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

import llmroute

PACKAGE = Path(llmroute.__file__).parent
#: Subpackages on the edge: the core (every module outside them) never imports them.
EDGES = ("cli", "testing", "compat")
#: Top-level modules that belong to the edges: the entry point and the aliases of moved modules.
EDGE_MODULES = ("__main__", "batch_cli", "jsonl_batch", "demo", "evaluate")


def _modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> Iterator[Tuple[str, List[str], int]]:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            yield _resolve(module, path, node), [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


def _defined_privates() -> Dict[str, Set[str]]:
    """For each module, the private names it defines: top-level, class attributes, self._x."""
    found: Dict[str, Set[str]] = {}
    for module, path in _modules():
        names: Set[str] = set()
        tree = _tree(path)
        # ``self._clock = client._clock`` copies another module's private; it defines nothing.
        copies = {id(target) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  for target in node.targets if isinstance(target, ast.Attribute)
                  and any(isinstance(part, ast.Attribute) and part.attr == target.attr
                          for part in ast.walk(node.value))}
        for node in ast.walk(tree):
            if id(node) in copies:
                continue
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and node.attr.startswith("_"):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) \
                    and node.id.startswith("_"):
                names.add(node.id)
        found[module] = {n for n in names if not (n.startswith("__") and n.endswith("__"))}
    return found


def _reads_foreign(node: ast.Attribute, own: Set[str], others: Set[str]) -> bool:
    """``x._name`` where ``_name`` is defined in another llmroute module and not in this one."""
    name = node.attr
    if not name.startswith("_") or name.startswith("__") or name not in others:
        return False
    base = node.value
    return name not in own and not (isinstance(base, ast.Name) and base.id in ("self", "cls"))


def test_the_core_never_imports_an_edge_subpackage():
    offenders = []
    for module, path in _modules():
        if module.split(".")[1:2] and module.split(".")[1] in EDGES + EDGE_MODULES:
            continue
        for target, _, line in _imports(module, path):
            parts = target.split(".")
            if parts[0] == "llmroute" and len(parts) > 1 and parts[1] in EDGES:
                offenders.append("%s:%d imports %s" % (path.name, line, target))
    assert offenders == []


def test_no_module_imports_the_package_init():
    """``from llmroute import X`` inside the package works only by import order."""
    submodules = {m.split(".")[1] for m, _ in _modules() if m.count(".") >= 1}
    offenders = []
    for module, path in _modules():
        if module == "llmroute":
            continue
        for target, names, line in _imports(module, path):
            if target == "llmroute" and any(n not in submodules for n in names):
                offenders.append("%s:%d from llmroute import %s" % (module, line, names))
    assert offenders == []


def test_no_module_reads_a_private_name_defined_in_another_module():
    privates = _defined_privates()
    offenders = []
    for module, path in _modules():
        own = privates[module]
        others = set().union(*(names for name, names in privates.items() if name != module))
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and _reads_foreign(node, own, others):
                offenders.append("%s:%d .%s" % (module, node.lineno, node.attr))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1 \
                    and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str) and node.args[1].value in others \
                    and node.args[1].value not in own:
                offenders.append("%s:%d %s(..., %r)" % (module, node.lineno, node.func.id,
                                                       node.args[1].value))
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, path, node)
                for alias in node.names:
                    if alias.name.startswith("_") and target.startswith("llmroute") \
                            and target.rsplit(".", 1)[-1].startswith("_") is False \
                            and alias.name in privates.get(target, ()):
                        offenders.append("%s:%d imports %s.%s" % (module, node.lineno, target,
                                                                   alias.name))
    assert offenders == []


def test_no_module_shares_a_public_name_of_the_package():
    modules = {m.split(".")[1] for m, _ in _modules() if m.count(".") >= 1}
    functions = {name for name in llmroute.__all__
                 if callable(getattr(llmroute, name)) and not isinstance(getattr(llmroute, name),
                                                                         type)}
    assert modules & functions == set()


@pytest.mark.parametrize("order", [
    "import llmroute.batching as m; import llmroute; assert m.batch is llmroute.batch",
    "import llmroute; import llmroute.batching as m; assert m.batch is llmroute.batch",
    "import llmroute; f = llmroute.batch; import llmroute.batching as m; assert m.batch is f",
    "import llmroute.classification as m; import llmroute; assert m.classify is llmroute.classify",
    "import llmroute; c = llmroute.classify; import llmroute.classification as m; "
    "assert m.classify is c and llmroute.classify is c",
    "from llmroute import batch, classify, Router; import llmroute.router as r; "
    "assert r.Router is Router",
])
def test_modules_and_functions_keep_their_names_in_any_import_order(order):
    out = subprocess.run([sys.executable, "-c", order + "; print('ok')"], capture_output=True,
                         text=True, timeout=60, cwd=str(PACKAGE.parent))
    assert out.stdout.strip() == "ok", out.stderr


def test_import_llmroute_loads_only_what_a_plain_chat_needs():
    code = ("import sys, llmroute; print(' '.join(sorted(m for m in sys.modules "
            "if m.startswith('llmroute'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=str(PACKAGE.parent), check=True)
    loaded = set(out.stdout.split())
    for lazy in ("llmroute.classification", "llmroute.router", "llmroute.batching",
                 "llmroute.stream", "llmroute.structured", "llmroute.tools", "llmroute.limits",
                 "llmroute.cli", "llmroute.testing", "llmroute.routes", "llmroute.health"):
        assert lazy not in loaded, lazy


def test_every_public_name_imports_and_is_listed():
    for name in llmroute.__all__:
        assert getattr(llmroute, name) is not None, name
    assert set(llmroute.__all__) <= set(dir(llmroute))


def _readme_listing() -> List[str]:
    """The module paths of the README's Design listing, relative to ``llmroute/``."""
    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    design = text[text.index("## Design"):]
    block = design[design.index("```\nllmroute/\n") + len("```\nllmroute/\n"):]
    block = block[:block.index("```")]
    paths, folder = [], ""
    for line in block.splitlines():
        name = line.split()[0]
        if name.endswith("/"):
            folder = name
        else:
            paths.append((folder if line.startswith("    ") else "") + name)
    return paths


def test_the_readme_design_listing_matches_the_tree():
    listed = _readme_listing()
    actual = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(listed) == actual


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the README names the old aliases
def test_every_llmroute_name_the_readme_uses_imports():
    import importlib
    import re

    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    missing = []
    # ``llmroute.X.Y`` (not an attribute path such as ``completion.llmroute.cost_usd``)
    for path in set(re.findall(r"(?<![\w.])llmroute((?:\.[A-Za-z_]\w*)+)", text)):
        obj: object = llmroute
        parts = path.strip(".").split(".")
        for index, part in enumerate(parts):
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:
                obj = importlib.import_module("llmroute." + ".".join(parts[:index + 1]))
            except ImportError:
                missing.append("llmroute" + path)
                break
    for module, names in re.findall(r"from (llmroute[\w.]*) import ([\w, ]+)", text):
        loaded = importlib.import_module(module)
        missing += ["%s.%s" % (module, n.strip()) for n in names.split(",")
                    if n.strip() and not hasattr(loaded, n.strip())]
    assert sorted(set(missing)) == []


@pytest.mark.parametrize("old, new", [
    ("llmroute.batch_cli", "llmroute.cli.batch"), ("llmroute.jsonl_batch", "llmroute.cli.jsonl"),
    ("llmroute.demo", "llmroute.cli.demo"),
    ("llmroute.evaluate", "llmroute.classification.evaluate"),
])
def test_a_moved_module_keeps_its_old_name_for_one_release_with_a_warning(old, new):
    code = ("import warnings, importlib, sys\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    module = importlib.import_module(%r)\n"
            "assert module is sys.modules[%r], module\n"
            "assert any(issubclass(w.category, DeprecationWarning) and %r in str(w.message)\n"
            "           for w in seen), [str(w.message) for w in seen]\n"
            "print('ok')" % (old, new, new))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=str(PACKAGE.parent))
    assert out.stdout.strip() == "ok", out.stderr


def test_no_module_reads_a_private_attribute_of_another_object():
    """``other._x`` (of another object, even of the same class) goes through a named interface;
    only ``self._x`` and ``cls._x`` are a class's own."""
    offenders = []
    for module, path in _modules():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                offenders.append("%s:%d %s" % (module, node.lineno, ast.unparse(node)))
    assert offenders == []
