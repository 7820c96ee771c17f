"""`python -m facturflow.validation.derive OUTDIR`: write the derived stylesheets for inspection."""

import sys

from . import main

raise SystemExit(main(sys.argv[1:]))
