"""One module per caching method: its config and its pure decision / prediction rules."""
