"""``python -m shouwang``: the command line."""

from shouwang.cli import main

main()
