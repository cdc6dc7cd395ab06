"""The project folder, and paths relative to it: the training notebook (run from notebooks/ or
by the sweep), the sweep and the report name data and runs the same way from anywhere."""

from __future__ import annotations

import os
from pathlib import Path


def workspace_root(start: Path | None = None) -> Path:
    """The project folder (holding pyproject.toml and lab4/): the one this package was
    loaded from (a checkout, or an editable install), else the first found from `start`
    (default: the current folder) upwards, else the current folder."""
    package_parent = Path(__file__).resolve().parent.parent
    candidates = [] if start else [package_parent]
    here = Path(start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    for folder in candidates:
        if (folder / "pyproject.toml").is_file() and (folder / "lab4").is_dir():
            return folder
    return here


def resolve(path: str | os.PathLike) -> Path:
    """A path as given when absolute, else relative to the project folder, so a notebook
    opened from notebooks/ and one run by the sweep find the same data and runs."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else workspace_root() / path


def display_path(path: str | os.PathLike) -> str:
    """A path relative to the project folder when inside it (for captions and messages)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(workspace_root()))
    except ValueError:
        return str(path)
