"""``python -m groundwork.core.reproduce SPEC.json``: the rerun's child process (see :mod:`.child`)."""

import sys

from groundwork.core.reproduce.child import main

sys.exit(main(sys.argv[1:]))
