"""CLI subcommands, one module each (see nasgraph/cli.py for the contract)."""
