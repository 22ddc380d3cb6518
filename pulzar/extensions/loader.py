"""Finding an extension by its `app_id` (in the master, without importing anything) and
loading its class (in a worker process).

An `app_id` is a plain module name: a letter, then letters, digits or `_`. It names either
`<extensions dir>/<app_id>.py` or one of the modules shipped in this package (`SHIPPED`); nothing
else is ever imported, so `../x`, `os` or `pulzar.core` are unknown extensions (404).
"""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import re
import sys
from pathlib import Path

from pulzar.core.errors import NotFound

SHIPPED = ("example", "search", "ocr", "imagematching")
PACKAGE_DIR = Path(__file__).resolve().parent
_APP_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
# Modules loaded from the extensions directory get their own namespace, so that an extension
# called `json` never replaces the standard library's in the worker.
_NAMESPACE = "pulzar_extension_"


def find_extension(app_id: str, directory: Path | None) -> Path:
    """The file of extension `app_id`: the directory's first, then the shipped one.

    Raises `NotFound` for anything that is not a plain module name found there.
    """
    if not _APP_ID.fullmatch(app_id) or keyword.iskeyword(app_id):
        raise NotFound(f"no extension named {app_id!r}")
    if directory is not None:
        candidate = directory / f"{app_id}.py"
        if candidate.is_file():
            return candidate
    if app_id in SHIPPED:
        return PACKAGE_DIR / f"{app_id}.py"
    raise NotFound(f"no extension named {app_id!r}")


def class_name(app_id: str) -> str:
    """`mysuperextension` -> `Mysuperextension` (the original's rule)."""
    return app_id.capitalize()


_loaded: dict[Path, tuple[tuple[int, int], type]] = {}


def load_class(path: Path, app_id: str) -> type:
    """Import `path` (once per version of the file) and return its extension class.

    Runs in a worker process. Raises `LookupError` when the module has no such class.
    """
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if path.parent == PACKAGE_DIR and app_id in SHIPPED:
        module = importlib.import_module(f"{__package__}.{app_id}")
    else:
        name = _NAMESPACE + app_id
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise LookupError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    # The original's rule first; `myExt` -> `MyExt` as well, for camel-cased file names.
    for candidate in (class_name(app_id), app_id[:1].upper() + app_id[1:]):
        cls = getattr(module, candidate, None)
        if isinstance(cls, type):
            _loaded[path] = (stamp, cls)
            return cls
    raise LookupError(f"{path.name} defines no class {class_name(app_id)}")
