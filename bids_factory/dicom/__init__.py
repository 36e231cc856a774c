"""DICOM headers read fast: a tag/length walk over the first bytes, pydicom as the fallback."""
