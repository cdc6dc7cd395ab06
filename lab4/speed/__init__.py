"""Speed: how fast the project trains and generates, against the naive loop.

bench: `python -m lab4 bench`, the training step and rollouts of the naive reference (the template's
loop) and of the project, timed in one process; gpucheck: `python -m lab4 gpucheck`, the bench and
short trainings measured on a GPU in one command (docs/speed.md).
"""
