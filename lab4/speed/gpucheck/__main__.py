"""`python -m lab4.speed.gpucheck --child SPEC RESULT`: one section of the GPU check, in a process of its
own (lab4.speed.gpucheck.check.run_section starts it). The sections' module, and with it torch, is loaded
only after tqdm's stand-in is in place, and inside the try: a broken torch is recorded, not lost."""

import json
import sys
import traceback
from pathlib import Path

from lab4.speed.gpucheck.recorder import Recorder, stand_in_for_tqdm

if len(sys.argv) != 4 or sys.argv[1] != "--child":
    sys.exit("usage: python -m lab4 gpucheck --out DIR (this package's own entry point is for its sections)")
spec = json.loads(Path(sys.argv[2]).read_text())
rec = Recorder(Path(sys.argv[3]))
code = 0
try:
    stand_in_for_tqdm(rec)
    from lab4.speed.gpucheck import sections

    getattr(sections, "section_" + spec["section"].replace("-", "_"))(spec["plan"], rec)
except BaseException as exc:  # recorded for the parent, then the exit code says it failed
    rec.data["error"] = "".join(traceback.format_exception(exc))[-4000:]
    rec.flush()
    code = 1
sys.exit(code)
