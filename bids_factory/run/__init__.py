"""A run, stage by stage: what is pending, the conversion batches and their workers."""
