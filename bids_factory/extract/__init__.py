"""Stage 2 - extract: a visit's DICOM (dcm2niix) or NIfTI export into staging, redacted."""
