"""``python -m orchestration.cli``."""

import sys

from . import main

sys.exit(main())
