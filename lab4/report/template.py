"""The starter report/report.typ: the assignment's sections as headings, a hint where the student
writes, and the generated figures, tables and quoted code in place. Written once; the student owns it.

It names only what every results.typ defines (figures, tables, code, the values appendix), never a
run of one sweep, so it keeps compiling when the report is rebuilt on another sweep."""

from __future__ import annotations

REPORT_TEMPLATE = """\
// Your Lab 4 report: yours to edit. `python -m lab4 report` created this file once and never
// overwrites it (delete it to get a fresh one). The figures, tables, quoted code and every measured
// number come from results.typ beside it, which each `python -m lab4 report` rewrites from the
// sweep it reports on: do not edit that one, refer to its names here.
//
// Compile: `make report` (the figures too), or `python -m lab4 report --draft-only` (seconds: only
// results.typ and report.pdf). With the typst command line, from the project folder:
// `typst compile --root . report/report.typ` (the figures are in ../figures/).
//
// A number in your text: `#kl_none_val_psnr` (the value), `#fmt(kl_none_val_psnr)` (two decimals)
// or `#kl_none_val_psnr_text` (with its seeds, data and the repeat-first-frame baseline); the
// appendix at the end lists every name this sweep has. Cite a figure with @fig-kl-annealing.
#import "results.typ": *

#set document(title: "Lab 4: Conditional VAE for Video Prediction")
#set page(paper: "a4", margin: (x: 2cm, y: 2.2cm), numbering: "1")
#set text(size: 10.5pt)
#set par(justify: true)
#set heading(numbering: "1.1")
#show heading.where(level: 1): set block(above: 1.6em, below: 0.9em)
#show figure.caption: set text(size: 8.5pt)
#show figure.where(kind: table): set block(breakable: true)  // a long table continues on the next page
#show raw.where(block: true): set text(size: 7.5pt)

// Where your text goes: delete each hint once you have written that part.
#let todo(body) = text(fill: rgb("#8a5a00"), style: "italic")[write here: #body]

#align(center)[
  #text(17pt, weight: "bold")[Lab 4: Conditional VAE for Video Prediction] \\
  #v(2pt)
  _Your name, student ID_
]

= Introduction
#todo[the task (a dancer's video predicted frame by frame from its first frame and a pose label
per frame), the conditional VAE, and what you found, in one paragraph.]

= Implementation details
== Training and testing protocol
#todo[how a clip is trained (encoders, posterior, decoder; one loss and one backward pass per
clip), and how you tested: the autoregressive rollout from the first frame with z from the prior,
PSNR per frame, the repeat-first-frame baseline.]

#code_training_one_step <code-training-step>
#settings_table <tab-settings>
#schedule_table <tab-schedules>

== Reparameterization trick
#todo[why z = mu + eps sigma lets the gradient reach the encoder, and the KL term it is weighed against.]

#code_reparameterize <code-reparameterize>
#code_kl_to_standard_normal <code-kl>

== Teacher-forcing strategy
#todo[when the previous frame is the ground truth and when it is the model's own prediction,
and how the ratio changes over the epochs.]

#code_teacher_forcing_ratio <code-tfr>
#code_teacher_forcing_draw <code-tf-draw>

== KL annealing ratio
#todo[the schedules (Monotonic, Cyclical, none) and the ratio and cycles you chose (@tab-schedules).]

#code_kl_beta <code-kl-beta>

= Analysis and discussion
== Teacher-forcing ratio and the loss
#fig_teacher_forcing <fig-teacher-forcing>
#todo[the teacher-forcing ratio against the loss curve: what changes when the ratio drops?]

== KL annealing: Monotonic, Cyclical and none
#fig_kl_annealing <fig-kl-annealing>
#todo[the three loss curves and their differences, with the PSNR each reached (@tab-results).]

== PSNR per frame of the validation video
#fig_psnr_per_frame <fig-psnr-per-frame>
#results_table <tab-results>
#test_table <tab-test>
#fig_frame_strip <fig-frame-strip>
#fig_psnr_heatmap <fig-psnr-heatmap>
#todo[how the error grows along the rollout, and how the model compares with the baseline.]

== Other training strategies
#fig_training_strategies <fig-training-strategies>
#strategies_table <tab-strategies>
#fig_z_strategies <fig-z-strategies>
#fig_val_psnr_per_epoch <fig-val-psnr-per-epoch>
#fig_time_to_quality <fig-time-to-quality>
#todo[what else you tried, and whether it beat the seed spread.]

#pagebreak()
= Appendix: the measured values
#text(fill: rgb("#8a5a00"), style: "italic")[Delete this appendix before handing in: it lists the name of
every number of the sweep, to use in your text.]

#values_table
"""
