"""lab4 gives oneDNN's kernel cache room for every kernel a run uses (see lab4/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

# 1,200 distinct convolution shapes, each run twice: a cache of 1024 kernels (oneDNN's default)
# has pushed out every one by the time the second pass needs it.
SCRIPT = """
import sys
if sys.argv[1] == "lab4":
    import lab4
import torch
torch.set_num_threads(1)
conv = torch.nn.Conv2d(16, 16, 3, padding=1).to(memory_format=torch.channels_last)
with torch.inference_mode():
    for rep in range(2):
        print(f"PASS {rep}", flush=True)
        for h in range(8, 48):
            for w in range(8, 38):
                conv(torch.zeros(2, 16, h, w).contiguous(memory_format=torch.channels_last))
"""


def kernels_compiled_again(import_lab4: bool) -> int:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    env["ONEDNN_VERBOSE"] = "profile_create"
    done = subprocess.run([sys.executable, "-c", SCRIPT, "lab4" if import_lab4 else "torch only"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    second_pass = done.stdout.split("PASS 1", 1)[1]
    return sum("cache_miss" in line for line in second_pass.splitlines())


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
@pytest.mark.timeout(150)
def test_importing_lab4_keeps_every_kernel_of_a_run_compiled_once():
    assert kernels_compiled_again(import_lab4=False) == 1200  # oneDNN's default cache thrashes
    assert kernels_compiled_again(import_lab4=True) == 0


def test_a_cache_size_the_user_set_wins():
    env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "7"}
    script = "import os, lab4; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "7"
