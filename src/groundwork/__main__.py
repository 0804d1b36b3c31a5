"""``python -m groundwork`` is the ``groundwork`` command."""

from groundwork.cli import main

main()
