"""Fingerprints of what code *means*, so that a run retrains only when its training code really changed.

A Python file counts by its syntax tree with every docstring removed (comments and layout never reach the tree),
so a docstring, a comment or a reformat leaves its fingerprint alone. A notebook counts by its code cells only, each
by its syntax tree in the same way (a cell that is not plain Python, say one with an IPython magic, by its text):
JupyterLab's autosave rewrites metadata, outputs and execution counts, and ``ruff format`` the layout, none of which
change a run.
Standard library only: everything above may import this module.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def python_fingerprint(source: str, name: str = "<source>") -> str:
    """sha256 of the docstring-free syntax tree of ``source`` (without line numbers)."""
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as e:
        raise ValueError(f"{name}: not valid Python (line {e.lineno}: {e.msg}); cannot fingerprint it") from e
    return hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest()


def notebook_fingerprint(path: str | Path) -> str:
    """sha256 of the code cells of a notebook, in order, each by its docstring-free syntax tree (by its text when it
    is not plain Python); markdown, metadata, outputs and layout do not count."""
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable notebook (expected nbformat JSON with 'cells'): {e}") from e
    h = hashlib.sha256()
    for cell in cells:
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            src = "".join(src) if isinstance(src, list) else src
            try:
                meaning = ast.dump(_strip_docstrings(ast.parse(src)))
            except SyntaxError:
                meaning = src
            h.update(meaning.encode())
            h.update(b"\0")
    return h.hexdigest()


_MEMO: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> fingerprint, within one process


def file_fingerprint(path: str | Path) -> str:
    """The meaning of one source file: Python by its syntax tree, notebooks by their code, anything else by bytes.
    Remembered per (path, modification time, size) within the process: the build asks for each file once per run."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _MEMO:
        _MEMO[key] = _file_fingerprint(path)
    return _MEMO[key]


def _file_fingerprint(path: Path) -> str:
    if path.suffix == ".py":
        return python_fingerprint(path.read_text(encoding="utf-8"), str(path))
    if path.suffix == ".ipynb":
        return notebook_fingerprint(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_fingerprint(root: Path, relative_paths: list[str]) -> dict[str, str]:
    """``{relative path: fingerprint}`` of each file under ``root``."""
    return {rel: file_fingerprint(root / rel) for rel in relative_paths}


def combine(parts: dict[str, str]) -> str:
    """One sha256 over named fingerprints, independent of the dict's order."""
    h = hashlib.sha256()
    for key in sorted(parts):
        h.update(f"{key}\t{parts[key]}\n".encode())
    return h.hexdigest()
