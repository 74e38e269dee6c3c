"""``python -m backbones``."""

import sys

from backbones.cli import main

sys.exit(main())
