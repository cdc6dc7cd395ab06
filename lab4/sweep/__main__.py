"""`python -m lab4.sweep --worker JOB`: how the sweep starts a worker (lab4.sweep.runner.WORKER_COMMAND)."""

import sys

from lab4.sweep.workers import worker_main

if len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.exit(worker_main(sys.argv[2]))
sys.exit("usage: python -m lab4 sweep PLAN (this package's own entry point is the sweep's worker)")
