"""The harness: targets, embedded server, state machine, pytest plugin, CLI."""
