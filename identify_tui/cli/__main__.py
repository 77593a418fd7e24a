"""``python -m identify_tui.cli``: the ``identify`` command."""

from identify_tui.cli import main

main()
