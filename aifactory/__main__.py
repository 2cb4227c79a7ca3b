"""`python -m aifactory` is the `aifactory` command."""

import sys

from aifactory.cli import main

sys.exit(main())
