"""Stage 6 - finalize: the dataset-level files, merged with what a person wrote."""
