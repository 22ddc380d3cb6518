"""Where job code comes from: the master's job directory, `<dir>/<group>/<name>.py`.

A job is named `group/name`, both plain identifiers, so a name can never reach outside the
directory. Catalog entries (description, arguments, category, author) are read from the
docstrings, as in the original: lines such as `Description: ...`, `Arguments: ...`,
`Category: ...`, `Author: ...` in the module's docstring or in `run`'s (or the class's
`execute`'s). The code is parsed, never imported, on the master.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulzar.core.errors import BadRequest, NotFound

# `\Z`, not `$`: `$` also matches before a trailing newline ("a/b\n" is no job name).
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_FIELDS = ("description", "arguments", "category", "author")
#: What `ast.parse` raises on a source it cannot take: deep nesting (`-` * 10**5 + `1`) is a
#: RecursionError or a MemoryError, not a SyntaxError.
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def check_name(name: str) -> str:
    """`group/name` with identifier parts, or `BadRequest` saying so."""
    parts = name.strip("/").split("/")
    if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
        raise BadRequest(
            f"job path must be <group>/<name>, each made of letters, digits and '_': {name!r}"
        )
    return "/".join(parts)


@dataclass(frozen=True, slots=True)
class JobCode:
    name: str
    source: str
    digest: str


def parse_doc(text: str | None) -> dict[str, str]:
    found = dict.fromkeys(_FIELDS, "")
    for line in (text or "").splitlines():
        label, sep, value = line.strip().partition(":")
        field = label.strip().lower()
        if sep and field in found and not found[field]:
            found[field] = value.strip().upper() if field == "category" else value.strip()
    if not found["description"] and text:
        first = text.strip().splitlines()[0].strip()
        if ":" not in first:
            found["description"] = first
    return found


def _docs(source: str, name: str) -> dict[str, str]:
    try:
        tree = ast.parse(source)
    except _UNPARSABLE as exc:
        return {**dict.fromkeys(_FIELDS, ""), "error": f"syntax error: {exc or type(exc).__name__}"}
    texts = [ast.get_docstring(tree)]
    class_name = name.split("/")[1].capitalize()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("run", "execute"):
            texts.append(ast.get_docstring(node))
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            texts.append(ast.get_docstring(node))
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "execute":
                    texts.append(ast.get_docstring(item))
    merged = dict.fromkeys(_FIELDS, "")
    for text in texts:
        for field, value in parse_doc(text).items():
            merged[field] = merged[field] or value
    return merged


class Catalog:
    def __init__(self, root: Path) -> None:
        self.root = root
        #: name -> (file path, (mtime_ns, size) when read, code)
        self._cache: dict[str, tuple[str, tuple[int, int], JobCode]] = {}

    def path(self, name: str) -> Path:
        group, module = check_name(name).split("/")
        return self.root / group / f"{module}.py"

    def code(self, name: str) -> JobCode:
        """The job's source and its digest (`NotFound` for an unknown job). The file is looked
        at on every call (one stat: this is on the path of every launch and dispatch); it is
        read again when its modification time or size changed."""
        cached = self._cache.get(name)
        if cached is not None:  # a name seen before is valid: skip the checks and the Path
            path_str, stamp, code = cached
            try:
                st = os.stat(path_str)
            except FileNotFoundError:
                pass  # gone: the slow path below says so
            else:
                if (st.st_mtime_ns, st.st_size) == stamp:
                    return code
        name = check_name(name)
        path = self.path(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"no job {name!r} (looked for {path})") from None
        source = path.read_text(encoding="utf-8")
        code = JobCode(name, source, hashlib.sha256(source.encode()).hexdigest()[:24])
        self._cache[name] = (str(path), (st.st_mtime_ns, st.st_size), code)
        return code

    def entries(self) -> list[dict[str, Any]]:
        """Every job with its documentation (the /admin/job_catalog list)."""
        out: list[dict[str, Any]] = []
        if not self.root.is_dir():
            return out
        for group in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for file in sorted(group.glob("*.py")):
                name = f"{group.name}/{file.stem}"
                if file.stem == "__init__" or not all(_NAME.match(p) for p in name.split("/")):
                    continue
                out.append({"path": name, **_docs(file.read_text(encoding="utf-8"), name)})
        return out

    def deploy(self, files: dict[str, str]) -> list[str]:
        """Write job files (`group/name.py` -> source) into the job directory; each file is
        written to a temp file and renamed, so a running dispatch never reads half a file."""
        written = []
        for relative, source in files.items():
            if not relative.endswith(".py"):
                raise BadRequest(f"only .py files can be deployed: {relative!r}")
            name = check_name(relative[:-3])
            try:
                ast.parse(source)
            except _UNPARSABLE as exc:
                raise BadRequest(f"{relative}: syntax error: {exc or type(exc).__name__}") from None
            target = self.path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".py.tmp")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, target)
            written.append(name)
        return written
