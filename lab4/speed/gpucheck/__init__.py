"""`python -m lab4 gpucheck --out DIR`: the project measured on a GPU in one command.

check: the parent (no torch), which runs each section in a child process (`python -m
lab4.speed.gpucheck --child`, see __main__); sections: what each section measures; recorder: what a
section writes as it goes; report: results.md and the headline numbers.
"""

from lab4.speed.gpucheck.check import (CAPS, MIN_SECTION_S, SECTIONS, add_commands, cmd_gpucheck, make_plan, run_check,
                                       run_section, write_results)
from lab4.speed.gpucheck.recorder import OPTIONAL_PACKAGES, Recorder, stand_in_for_tqdm

__all__ = ["CAPS", "MIN_SECTION_S", "OPTIONAL_PACKAGES", "SECTIONS", "Recorder", "add_commands", "cmd_gpucheck",
           "make_plan", "run_check", "run_section", "stand_in_for_tqdm", "write_results"]
