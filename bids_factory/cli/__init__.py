"""The command line: grammar, commands, the demo export."""
