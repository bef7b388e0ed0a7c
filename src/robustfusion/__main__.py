"""``python -m robustfusion``: the command line."""

import sys

from robustfusion.cli import main

sys.exit(main())
