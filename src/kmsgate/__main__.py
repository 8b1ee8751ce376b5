"""``python -m kmsgate`` runs the command line."""

from kmsgate.cli import main

main()
