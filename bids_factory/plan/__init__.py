"""Stage 3 - plan: what each converted series is, and where the heuristic places it."""
