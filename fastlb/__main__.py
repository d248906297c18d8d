"""Entry point for ``python -m fastlb``."""

import sys

from .cli import main

sys.exit(main())
