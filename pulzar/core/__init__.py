"""Pure building blocks: keys, errors, config, tickets, placement. No I/O, no HTTP."""
