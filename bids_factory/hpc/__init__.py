"""Running the visit-level task on an HPC engine (SLURM job arrays)."""
