"""Stage 1 - discover: the export's day folders and the visits in them."""
