"""CLI subcommands, one module each; `ensplit.cli` discovers them (see its docstring)."""
