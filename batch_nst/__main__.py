"""`python -m batch_nst` runs the `batch-nst` command."""

import sys

from batch_nst.cli import main

sys.exit(main())
