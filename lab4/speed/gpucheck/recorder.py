"""What a section of the GPU check writes as it goes (Recorder), in its child process, and the
silent stand-in for tqdm on a machine without it. Torch-free: the parent and the child use it."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path
from typing import Any

# Packages a section reports as present or missing (the check needs only torch, numpy, pillow).
OPTIONAL_PACKAGES = ("numpy", "PIL", "tqdm", "pandas", "matplotlib")


class Recorder:
    """A section's result, rewritten to disk at each save(), so that a timeout keeps what was done."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"result": {}, "notes": []}

    def save(self, **result: Any) -> None:
        self.data["result"].update(result)
        self.flush()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.path)


def stand_in_for_tqdm(rec: Recorder) -> None:
    """lab4's training loop and data generator draw tqdm bars; without tqdm they get silent ones."""
    try:
        import tqdm  # noqa: F401
        return
    except ImportError:
        pass

    class SilentBar:
        def __init__(self, iterable: Any = None, *args: Any, **kwargs: Any):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def __enter__(self) -> "SilentBar":
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

        def update(self, n: int = 1) -> None:
            pass

        def set_postfix(self, *args: Any, **kwargs: Any) -> None:
            pass

        def close(self) -> None:
            pass

    module = types.ModuleType("tqdm")
    module.tqdm = SilentBar  # type: ignore[attr-defined]
    # A spec without a file: torch._dynamo looks every such module up by its spec.
    module.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
    module.lab4_stand_in = True  # type: ignore[attr-defined]
    sys.modules["tqdm"] = module
    rec.note("tqdm is not installed: a silent stand-in replaced its progress bars")
