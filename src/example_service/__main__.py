"""`python -m example_service`: the same command as `example-service`."""

import sys

from example_service.cli import main

if __name__ == "__main__":
    sys.exit(main())
