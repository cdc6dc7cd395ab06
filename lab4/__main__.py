import sys

from lab4.cli import main

sys.exit(main())
