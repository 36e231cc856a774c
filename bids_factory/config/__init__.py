"""A user's configuration files (heuristics, EHR mapping) read as data and checked by JSON Schema."""
