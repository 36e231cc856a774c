"""Stage 5 - ehr: EHR tables to BIDS phenotype files and participants columns (pure computation)."""
