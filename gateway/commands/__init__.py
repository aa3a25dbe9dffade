"""Subcommands of the ``mlgate`` CLI, one module per command group."""
