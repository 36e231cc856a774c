"""Precise exceptions. The CLI turns each into one clear line for the user."""


class BidsFactoryError(Exception):
    """Base class: an expected failure caused by input or environment, never a bug."""


class HeuristicError(BidsFactoryError):
    """The heuristic file cannot be used (unreadable, not JSON, fails its schema)."""


class EhrMappingError(BidsFactoryError):
    """The EHR mapping file cannot be used (unreadable, not JSON/YAML, fails its schema)."""


class SidecarSchemaError(BidsFactoryError):
    """A sidecar schemas folder cannot be used (missing, unreadable, not JSON, not a JSON Schema)."""


class CsvError(BidsFactoryError):
    """An EHR CSV file cannot be read; the message is the reason. Reported for that file, the run goes on."""


class VisitError(BidsFactoryError):
    """One visit cannot be converted; the rest of the export goes on."""


class VisitWithoutImages(VisitError):
    """A visit folder holding only non-image DICOM objects (reports, presentation states, a DICOMDIR):
    nothing to convert, a note and not a failure. ``notes`` name what it holds."""

    def __init__(self, message: str, notes: tuple = (), count: int = 0):
        super().__init__(message)
        self.notes, self.count = notes, count

    def __reduce__(self):  # raised in a worker process: its notes and count cross to the parent
        return type(self), (str(self), self.notes, self.count)


class IdentifiersUnreadable(VisitError):
    """A visit whose identifiers cannot be read: its free text cannot be checked, so it is not placed."""


class ExportLayoutError(BidsFactoryError):
    """The export folder is not a Data Capture export (missing, not a folder, no DICOM/)."""


class DatasetLockedError(BidsFactoryError):
    """Another bids-factory run holds the dataset."""


class ToolMissingError(BidsFactoryError):
    """An external tool (dcm2niix, bids-validator-deno) is not installed."""


class ValidatorFailedError(BidsFactoryError):
    """bids-validator-deno is installed but could not check a dataset (its runtime refused the path, it
    crashed): what it was to check is not vouched for, so the run stops before placing it."""


class DatasetError(BidsFactoryError):
    """The folder given as a BIDS dataset is not one (no dataset_description.json), or cannot become one
    (a file, someone's non-empty folder)."""


class SlurmError(BidsFactoryError):
    """The jobs cannot be submitted: no ``sbatch``, or SLURM refused them."""
