"""Importing lab4 gives oneDNN's kernel cache room for 4096 kernels, unless the user chose a size
(see lab4/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = "import os, {module}; print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'))"


def cache_capacity_after_import(module: str, user_value: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if user_value is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = user_value
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_lab4_or_any_of_its_modules_sets_room_for_4096_kernels():
    assert cache_capacity_after_import("lab4") == "4096"
    assert cache_capacity_after_import("lab4.config") == "4096"  # a submodule imports the package first


def test_a_cache_size_the_user_set_wins():
    assert cache_capacity_after_import("lab4", user_value="7") == "7"
