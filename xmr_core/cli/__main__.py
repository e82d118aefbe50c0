"""`python -m xmr_core.cli`."""

import sys

from xmr_core.cli import main

sys.exit(main())
