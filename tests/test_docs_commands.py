"""Every command the README and docs/ show runs as written: its flags parse, the profiles, plans,
plan runs, config fields and make targets it names exist, and a sweep folder it reads a table
from has its records committed. A bare `make` is dry-run (`make -n`, which runs nothing): it must
run what the docs say it does. What can only be checked by running (a GPU, minutes of training)
is left to the commands themselves."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lab4.cli import lazy_command_parser, parser
from lab4.commands import LAZY_COMMANDS
from lab4.config import PROFILES, make_config, parse_overrides
from lab4.sweep.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "data" / "README.md"]
# A word in capitals (DIR, RUN_DIR, OUT.ckpt's stem...) stands for the user's value.
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*(\.\w+)?$")


def _commands_in(text: str) -> list[str]:
    """`python -m lab4 ...` and `make ...` commands: fenced code lines and inline code spans."""
    found: list[str] = []
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    for block in fenced:
        found += [line.split(" #")[0] for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    commands = []
    for line in found:
        line = " ".join(line.split())
        if line.startswith(("python -m lab4 ", "make ")) or line in ("make", "python -m lab4"):
            # Optional parts in usage brackets, and "..." continuations, are not the command itself.
            commands.append(re.sub(r"\s*\[[^\]]*\]|\s*\.\.\.", "", line).strip())
    return commands


def _all_commands() -> list[tuple[str, str]]:
    return sorted({(doc.relative_to(ROOT).as_posix(), command) for doc in DOCS if doc.is_file()
                   for command in _commands_in(doc.read_text())})


COMMANDS = _all_commands()


def _makefile_targets() -> set[str]:
    text = MAKEFILE.read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, flags=re.M))


def _check_lab4(words: list[str]) -> None:
    top = lazy_command_parser(words[0]) if words and words[0] in LAZY_COMMANDS else parser()
    if len(words) == 1:
        # A command named in prose ("`python -m lab4 score` scores any submission"): it must exist,
        # which its --help tells (exit 0; an unknown command exits 2).
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as help_exit:
            top.parse_args([words[0], "--help"])
        assert help_exit.value.code == 0, f"no command {words[0]!r}"
        return
    # A placeholder profile stands for any profile; argparse checks the choice.
    words = ["quick" if PLACEHOLDER.match(w) and words[i - 1] == "--profile" else w for i, w in enumerate(words)]
    try:
        args = top.parse_args(words)
    except SystemExit as exc:
        raise AssertionError(f"the flags do not parse (exit {exc.code})") from None
    profile = getattr(args, "profile", None)
    if profile and not PLACEHOLDER.match(profile):
        assert profile in PROFILES, f"no profile {profile!r}"
    overrides = [item for item in (getattr(args, "set", None) or []) if not PLACEHOLDER.match(item.split("=")[0])]
    if overrides:
        make_config(profile if profile and profile in PROFILES else "quick", parse_overrides(overrides))
    plan_name = getattr(args, "plan", None)
    if args.command == "sweep" and plan_name and not PLACEHOLDER.match(plan_name):
        plan = load_plan(plan_name)
        names = {run.base for run in plan.runs} | {run.name for run in plan.runs}
        for only in (args.only.split(",") if getattr(args, "only", None) else []):
            assert only in names, f"plan {plan_name} has no run {only!r}"
    sweep = getattr(args, "sweep", None)
    if args.command == "table" and sweep:
        assert (ROOT / sweep / "sweep.json").is_file() or (ROOT / sweep / "summary.csv").is_file(), (
            f"{sweep}: the records of this table are not committed")


def _default_goal_commands() -> list[str]:
    """What a bare `make` would run, as `make -n` prints it (nothing runs): one line per command."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine: the docs' bare `make` cannot be dry-run")
    # Under `make test` the parent make's flags are in the environment; the dry run takes none of them.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    done = subprocess.run(["make", "-n", "--no-print-directory", "-f", str(MAKEFILE)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"`make -n` fails: {done.stderr.strip()}"
    return [line for line in done.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def _check_bare_make() -> None:
    """A bare `make` does what the docs say it does (README: "set-up, the synthetic data, the report's
    ablations (CPU), figures/ and report/"; docs/results.md: the ablations of profile quick-chain;
    docs/speed.md: it sets TCMALLOC_RELEASE_RATE=0 for training): its dry run runs the set-up, then
    `lab4 data`, `lab4 sweep ablations`, `lab4 report`, in that order, and each lab4 command of it
    parses as a documented command must."""
    lines = _default_goal_commands()
    lab4 = [line.split("-m lab4 ", 1)[1] for line in lines if "-m lab4 " in line]
    assert [command.split()[0] for command in lab4] == ["data", "sweep", "report"], lines
    first_lab4 = next(i for i, line in enumerate(lines) if "-m lab4 " in line)
    assert any("setup:" in line for line in lines[:first_lab4]), f"no set-up before the rest: {lines}"
    sweep = next(line for line in lines if "-m lab4 sweep" in line)
    assert "TCMALLOC_RELEASE_RATE=0" in sweep
    plan = shlex.split(sweep.split("-m lab4 ", 1)[1])[1]
    assert load_plan(plan).profile == "quick-chain"
    for command in lab4:
        _check_lab4(shlex.split(command))


def _check_make(words: list[str]) -> None:
    if not words:
        _check_bare_make()
        return
    targets = _makefile_targets()
    for word in words:
        if "=" in word:
            name, value = word.split("=", 1)
            if PLACEHOLDER.match(value):
                continue
            if name == "PLAN":
                load_plan(value)
            elif name == "PROFILE":
                assert value in PROFILES, f"no profile {value!r}"
        else:
            assert word in targets, f"the Makefile has no target {word!r}"


def test_the_docs_show_commands() -> None:
    docs = {doc for doc, _ in COMMANDS}
    assert {"README.md", "docs/results.md"} <= docs
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_a_command_in_the_docs_runs_as_written(doc: str, command: str) -> None:
    words = shlex.split(command)
    if words[0] == "make":
        _check_make(words[1:])
    else:
        _check_lab4(words[3:])
