"""One module per ``vidsr`` subcommand; ``vidsr.cli`` assembles them."""
