"""Imports go down the layers, never up; `indexer` is a FAISS library that knows nothing of vidpipe.

`LAYERS` is the one place the architecture's order is written (the README's "Layout" section
draws it). A module may import its own layer and the layers below it. Every import counts,
including those placed inside functions (they hid an indexer -> pipeline -> store -> indexer
cycle before) and those under ``if TYPE_CHECKING``: the source is parsed with `ast`, nothing is
imported. `indexer/` stands apart: it may import the standard library, numpy and faiss only, and
anything in vidpipe may use it like any other library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Bottom first. A module belongs to the entry that is the longest prefix of its dotted name.
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: the package itself (__version__), errors, file types, place labels, provenance
    ("vidpipe", "vidpipe.errors", "vidpipe.filetype", "vidpipe.places", "vidpipe.provenance"),
    # the case database: schema, connections, audit, queries, retention
    ("vidpipe.store",),
    # review-UI accounts: password policy, scrypt hashes, roles, logins (the CLI and the UI share them)
    ("vidpipe.accounts",),
    # decoding, features and the models that compute them
    ("vidpipe.decode", "vidpipe.extract", "vidpipe.models"),
    # evidence sources, video, hash lists, local scene descriptors
    ("vidpipe.sources", "vidpipe.video", "vidpipe.hashlists", "vidpipe.scenes_local", "vidpipe.scenes_regions"),
    # ingest; CaseWriter (store/writer.py) is the pipeline's single writer: it stores the
    # pipeline's typed results, so it sits with the pipeline, above the rest of store
    ("vidpipe.pipeline", "vidpipe.store.writer"),
    # the query side: search modes, the case's indexes, calibration
    ("vidpipe.search",),
    # what is built on search and ingest: people (clustering), reports, export, verify
    ("vidpipe.people", "vidpipe.reporting"),
    # the command line
    ("vidpipe.cli", "vidpipe.__main__"),
    # the review UI, and what nothing in the product imports: the test kit, benchmarks, tools
    ("ui", "vidpipe.testing", "bench", "tools"),
)
# Known upward imports still to be removed, each with why it exists and who removes it. The test
# fails when one of them is gone (take it out of here) as well as when a new one appears.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
# Packages parsed, and what the standalone library may import besides itself and the stdlib.
PACKAGES = ("vidpipe", "indexer", "ui", "bench", "tools")
STANDALONE = "indexer"
STANDALONE_MAY_IMPORT = frozenset({"numpy", "faiss"})


def layer_of(module: str) -> int | None:
    """The layer index of a first-party module (longest matching prefix), or None if it has none."""
    best, best_len = None, -1
    for level, entries in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > best_len:
                best, best_len = level, len(entry)
    return best


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth; ``from a import b``
    names ``a.b`` when that is a module (``from vidpipe import filetype``), else ``a``."""
    module = module_name(root, path)
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((node.lineno, full if _is_module(root, full) else base))
    return out


def first_party_files(root: Path) -> list[Path]:
    return sorted(p for pkg in PACKAGES if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py"))


def upward_imports(root: Path, known: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Every import that goes up the table (except the ``known`` ones), or from the standalone
    library into anything but the stdlib, numpy and faiss, or from/to a first-party module the
    table does not place."""
    problems: list[str] = []
    for path in first_party_files(root):
        module = module_name(root, path)
        here = layer_of(module)
        top = module.split(".")[0]
        for line, target in imports_of(root, path):
            target_top = target.split(".")[0]
            where = f"{path.relative_to(root)}:{line}: {module} imports {target}"
            if top == STANDALONE:
                if target_top not in (STANDALONE, *STANDALONE_MAY_IMPORT) and target_top not in sys.stdlib_module_names:
                    problems.append(f"{where} ({STANDALONE} may import only the stdlib, numpy and faiss)")
                continue
            if target_top not in PACKAGES or target_top == STANDALONE:
                continue  # third-party, stdlib, or the standalone library: any layer may use them
            there = layer_of(target)
            if here is None or there is None:
                problems.append(f"{where} (no layer for {module if here is None else target}: add it to LAYERS)")
            elif there > here and (module, target) not in (known or {}):
                problems.append(f"{where} (layer {here} imports layer {there}: upward)")
    return list(dict.fromkeys(problems))  # one line per import, however many names it takes


def test_every_first_party_module_has_a_layer():
    missing = [module_name(REPO, p) for p in first_party_files(REPO)
               if module_name(REPO, p).split(".")[0] != STANDALONE and layer_of(module_name(REPO, p)) is None]
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_no_import_goes_up_a_layer_and_indexer_imports_no_vidpipe():
    problems = upward_imports(REPO, KNOWN_UPWARD)
    assert not problems, "imports against the layer table:\n" + "\n".join(problems)


def test_known_upward_imports_still_exist():
    """An exception whose import is gone must leave the table, so it cannot hide a new one."""
    found = {(module_name(REPO, p), target) for p in first_party_files(REPO) for _, target in imports_of(REPO, p)}
    stale = [pair for pair in KNOWN_UPWARD if pair not in found]
    assert not stale, f"no longer imported, remove from KNOWN_UPWARD: {stale}"


def test_the_check_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The checker itself: an upward import hidden in a function, a relative one, and the
    library reaching into vidpipe are each reported; a downward import is not."""
    files = {
        "vidpipe/__init__.py": "",
        "vidpipe/errors.py": "",
        "vidpipe/store/__init__.py": "",
        "vidpipe/store/casedb.py": "def f():\n    from vidpipe.search.api import search\n",
        "vidpipe/store/rel.py": "from ..search import api\n",
        "vidpipe/search/__init__.py": "",
        "vidpipe/search/api.py": "import numpy\nfrom vidpipe.store import casedb\nfrom vidpipe import errors\n",
        "indexer/__init__.py": "",
        "indexer/base.py": "import os\nimport faiss\n\ndef g():\n    from vidpipe.errors import UsageError\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    problems = upward_imports(tmp_path)
    assert len(problems) == 3, problems
    assert any("vidpipe/store/casedb.py:2" in p and "upward" in p for p in problems)
    assert any("vidpipe/store/rel.py:1" in p and "vidpipe.search.api" in p for p in problems)
    assert any("indexer/base.py:5" in p and "only the stdlib" in p for p in problems)
