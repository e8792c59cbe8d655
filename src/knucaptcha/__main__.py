"""``python -m knucaptcha`` runs the command line."""

from .cli import main

main()
