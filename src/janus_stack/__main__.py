"""``python -m janus_stack`` runs the CLI."""

from janus_stack.cli import main

main()
