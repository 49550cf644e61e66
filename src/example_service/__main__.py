import sys

from example_service.cli import main

sys.exit(main())
