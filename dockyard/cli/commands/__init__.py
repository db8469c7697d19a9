"""dockyard command groups: each module has a COMMANDS table of flags.Command."""
