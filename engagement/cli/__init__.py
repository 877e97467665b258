"""The `engagement` command (`main`) and its subcommands, one module per command group."""
