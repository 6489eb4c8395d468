"""``python -m coimprove`` runs the CLI."""

from coimprove.cli import main

main()
