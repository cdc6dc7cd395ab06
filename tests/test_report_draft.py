"""The Typst report draft (lab4.report.draft): `python -m lab4 report` writes report/report.typ once
(the student's), report/results.typ every time (figures, tables, named values, quoted code) and
compiles report/report.pdf; checked on a small smoke sweep trained for real in this process."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import textwrap
from pathlib import Path

import pytest

typst = pytest.importorskip("typst")

from lab4 import cli  # noqa: E402
from lab4.report import tables  # noqa: E402
from lab4.report.draft import RESULTS_LABEL  # noqa: E402
from lab4.report.typ import string  # noqa: E402
from lab4.report.values import METRICS, QUOTED  # noqa: E402
from lab4.runs.results import load_sweep  # noqa: E402

SECTIONS = ["Introduction", "Implementation details", "Training and testing protocol", "Reparameterization trick",
            "Teacher-forcing strategy", "KL annealing ratio", "Analysis and discussion",
            "Teacher-forcing ratio and the loss", "KL annealing: Monotonic, Cyclical and none",
            "PSNR per frame of the validation video", "Other training strategies"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def smoke_sweep(tiny_data, tmp_path_factory) -> Path:
    """Three of the smoke plan's runs (smoke profile, a tenth of the clips, an 8-frame val video),
    trained in this process rather than through the notebooks (seconds, not minutes), without test
    predictions; summary.csv as the sweep writes it; one figure drawn and saved as the notebook does."""
    import torch

    from lab4.sweep.experiment import run_training
    from lab4.sweep.plan import load_plan
    from lab4.sweep.summary import Outcome, write_summary

    base = tmp_path_factory.mktemp("draft")
    plan_file = base / "plan.yaml"
    plan_file.write_text(textwrap.dedent(f"""
        name: smoke
        profile: smoke
        data_root: {tiny_data}
        seeds: [0]
        settings: {{partial: 0.1, val_vi_len: 8}}
        runs:
          - {{name: kl_cyclical, label: "KL Cyclical, TF decaying", groups: [kl, tf],
             settings: {{kl_anneal_type: Cyclical}}}}
          - {{name: kl_none, label: "KL None, TF decaying", groups: [kl], settings: {{kl_anneal_type: "None"}}}}
          - {{name: tf_zero, label: "KL Cyclical, TF 0", groups: [tf], settings: {{tfr: 0.0}}}}
        """))
    plan = load_plan(plan_file)
    sweep_dir = base / "runs" / "smoke"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run in plan.runs:
            run_training(run.config, sweep_dir / run.name, existing="restart", progress=False)
    finally:
        torch.set_num_threads(threads)
    write_summary(plan, sweep_dir, [Outcome(run, "done", 1.0) for run in plan.runs])
    from lab4.report import ReportBook

    book = ReportBook(load_sweep(sweep_dir))
    book.teacher_forcing()
    book.save(base / "figures")  # PDF, PNG and captions.json
    return sweep_dir


@pytest.fixture(scope="module")
def drafted(smoke_sweep) -> tuple[Path, Path, str]:
    """`python -m lab4 report SWEEP --draft-only` into the sweep's own figures/ and report/ folders."""
    root = smoke_sweep.parent.parent
    code, out, err = run_cli("report", str(smoke_sweep), "--figures", str(root / "figures"),
                             "--report-dir", str(root / "report"), "--draft-only")
    assert code == 0, out + err
    return root / "report", root / "figures", out


def query(source: Path, label: str, root: Path):
    """The value of the metadata labelled `label` in the compiled `source` (typst query, JSON)."""
    return json.loads(typst.query(str(source), f"<{label}>", field="value", one=True, root=str(root),
                                  ignore_system_fonts=True))


def test_report_writes_the_users_source_the_results_and_a_pdf(drafted):
    report_dir, figures, out = drafted
    source = (report_dir / "report.typ").read_text()
    assert '#import "results.typ": *' in source
    headings = re.findall(r"^=+ (.+)$", source, flags=re.M)
    assert [h for h in headings if h in SECTIONS] == SECTIONS
    assert "created" in out and "never overwritten" in out
    pdf = (report_dir / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 5
    results = (report_dir / "results.typ").read_text()
    # The figures the report drew, by their path relative to report/; those not drawn, as placeholders.
    assert 'image("../figures/fig1_teacher_forcing.pdf"' in results
    assert "fig2_kl_annealing is not in" in results and "fig2_kl_annealing" in out
    assert "This sweep has no strategies group" in results and "No test score" in results
    captions = (figures / "captions.json").read_text()
    assert "Teacher-forcing ratio per epoch" in captions and "Teacher-forcing ratio per epoch" in results


def test_named_values_are_the_results_tables_with_seeds_data_and_baseline(drafted, smoke_sweep):
    report_dir, _, _ = drafted
    sweep = load_sweep(smoke_sweep)
    table = tables.results_table(sweep.finished, sweep.last_validation()).set_index("run")
    values = query(report_dir / "results.typ", RESULTS_LABEL, report_dir.parent)
    assert set(values["runs"]) == set(table.index) == {"kl_cyclical", "kl_none", "tf_zero"}
    for base, row in table.iterrows():
        got = values["runs"][base]
        assert got["seeds"] == [0] and got["n"] == 1 and got["style"] == "studio"
        for name, (column, _, _) in METRICS.items():
            expected = row[column]
            assert (got[name] is None) if expected != expected else got[name] == pytest.approx(expected, rel=1e-12)
    assert values["runs"]["kl_none"]["test_psnr"] is None  # no test predictions: n/a, not 0

    # The flat names report.typ uses, read back through a document that imports results.typ.
    probe = report_dir / "probe.typ"
    probe.write_text('#import "results.typ": *\n#metadata((kl_none_val_psnr, kl_none_baseline_psnr, '
                     'kl_none_val_psnr_text, fmt(kl_none_val_psnr), kl_none.config.tfr, kl_none_test_psnr)) <probe>\n')
    psnr, baseline, text, formatted, tfr, test = query(probe, "probe", report_dir.parent)
    row = table.loc["kl_none"]
    assert psnr == pytest.approx(row["val_psnr_mean"]) and baseline == pytest.approx(row["baseline_psnr_mean"])
    assert formatted == f"{row['val_psnr_mean']:.2f}" and tfr == 1.0 and test is None
    assert text.startswith(f"{row['val_psnr_mean']:.2f} dB (seed 0; repeat-first-frame baseline "
                           f"{row['baseline_psnr_mean']:.2f} dB; data ") and text.endswith(", style studio)")


def test_the_quoted_code_is_the_current_source(drafted):
    import importlib

    report_dir, _, _ = drafted
    code = query(report_dir / "results.typ", RESULTS_LABEL, report_dir.parent)["code"]
    assert set(code) == {name for _, name in QUOTED} >= {"training_one_step", "reparameterize",
                                                          "kl_to_standard_normal", "kl_beta", "teacher_forcing_ratio"}
    for module, name in QUOTED:
        source = inspect.getsource(getattr(importlib.import_module(module), name))
        assert code[name] == textwrap.dedent(source).rstrip("\n"), name
    assert "z = mu + eps * sigma" in code["reparameterize"] or "exp(0.5 * logvar)" in code["reparameterize"]
    assert "for i in range(1, length):" in code["training_one_step"]  # the template's loop over time, quoted


def test_a_second_report_keeps_the_users_text_and_refreshes_the_results(drafted, smoke_sweep):
    report_dir, figures, _ = drafted
    report, results = report_dir / "report.typ", report_dir / "results.typ"
    mine = report.read_text().replace("= Introduction\n", "= Introduction\nMy own words, #kl_none_val_psnr_text. "
                                      "#metadata(\"kept\") <mine>\n")
    report.write_text(mine)
    results.write_text(results.read_text() + "\n#let stale = 1\n")
    code, out, err = run_cli("report", str(smoke_sweep), "--figures", str(figures), "--report-dir", str(report_dir),
                             "--draft-only")
    assert code == 0, out + err
    assert report.read_text() == mine and "from your" in out
    assert "#let stale" not in results.read_text()
    assert query(report, "mine", report_dir.parent) == "kept"  # the user's text is in what compiles
    assert (report_dir / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_report_that_does_not_compile_is_one_line_naming_the_file(smoke_sweep, tmp_path):
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "report.typ").write_text('#import "results.typ": *\n= Introduction\n#no_such_value\n')
    code, out, err = run_cli("report", str(smoke_sweep), "--figures", str(tmp_path / "figures"), "--report-dir",
                             str(report_dir), "--draft-only")
    assert code == 1
    line = err.strip()
    assert "\n" not in line and "report.typ" in line and "line 3" in line and "unknown variable" in line, err
    assert (report_dir / "results.typ").is_file() and not (report_dir / "report.pdf").exists()


@pytest.mark.parametrize("text", ['a "quoted" \\ back\\slash', "two\nlines\tand a tab", "#let x = [*not* markup] // $",
                                  "ünïcode ± — 🙂", "\x01control\x7f"])
def test_any_text_reaches_typst_unchanged(tmp_path, text):
    source = tmp_path / "s.typ"
    source.write_text(f"#metadata({string(text)}) <s>\n")
    assert query(source, "s", tmp_path) == text
