"""`python -m bench`: the side-by-side run (`make bench`)."""

import sys

from bench.cli import main

sys.exit(main())
