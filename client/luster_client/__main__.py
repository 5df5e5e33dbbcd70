"""`python -m luster_client`: the `luster` command line."""

import sys

from luster_client.cli import main

sys.exit(main())
