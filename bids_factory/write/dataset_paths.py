"""Every path bids-factory keeps inside the dataset, in one place: its provenance and state under
``code/bids-factory/`` (BIDS leaves ``code/`` to the dataset's curators; the validator ignores it)."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = Path("code") / "bids-factory"
VISIT_RECORDS = STATE_DIR / "visits"  # one provenance record per placed visit (model.VisitRecord)
VISIT_STATES = STATE_DIR / "state"  # one state per converted visit, what a later run compares (model.VisitState)
VISIT_INDEX = STATE_DIR / "index.sqlite"  # derived from the records and states (write.visit_index), rebuilt when lost
TMP_FILES = STATE_DIR / "tmp"  # text files being written, before their rename (recovery empties it)
RUN_RECORDS = STATE_DIR / "runs"  # one record per run, and the validator's full output
WRITTEN = STATE_DIR / "written"  # what bids-factory last wrote of each merged JSON file (json_merge's base)
SUBJECTS_FILE = STATE_DIR / "subjects.json"
IDENTIFIER_KEYS_FILE = STATE_DIR / "identifier-keys.json"  # keyed hashes of each subject's identifiers (ehr/)
THUMBNAILS = STATE_DIR / "thumbnails"
PICTURE_SUFFIXES = (".png", ".jpg")  # an image's thumbnail and its enlarged picture, under THUMBNAILS
REPORT_PAGE = STATE_DIR / "report.html"  # the report's index page
REPORT_SUBJECT_PAGES = STATE_DIR / "report"  # the report's page of each subject (sub-<label>.html)
REPORT_PAGES_KEY = STATE_DIR / "report-pages.json"  # what made the subject pages (version, date policy)
SLURM_DIR = STATE_DIR / "slurm"  # one folder per `bids-factory slurm` submission: scripts and job logs
SUBJECT_KEY = STATE_DIR / "subject-key"  # 32 random bytes (hex): the HMAC key of subjects.json, 0600
LINKAGE = STATE_DIR / "linkage.tsv"  # every subject with images but no EHR row and every EHR patient without images
KEPT_ASIDE = STATE_DIR / "kept"  # a person's files a reconverted session now has under the same name
REPLACED = STATE_DIR / "replaced"  # placed files a person's decision (--apply-changes) took out of a session
HISTORY = STATE_DIR / "history.json"  # one line per run (report.history_entry), for the report's history
# what the dataset-level files were last computed from (EHR files, options) and that run's EHR outcome:
# a run with nothing new skips them; placing a visit removes it (a killed run leaves them to the next run)
DATASET_FILES_STATE = STATE_DIR / "dataset-files.json"
UNLISTED = STATE_DIR / "unlisted"  # one empty file per subject whose sessions.tsv misses a placed session
UNANNOUNCED = STATE_DIR / "unannounced"  # per session placed: its CHANGES line, until CHANGES holds it
