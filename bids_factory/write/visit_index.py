"""The index of the dataset's visits (``code/bids-factory/index.sqlite``): what a run compares and counts,
without reading one JSON file per visit.

The visit records (``visits/``) and visit states (``state/``) stay the truth; the index is derived from them
and can always be rebuilt: when it is missing, is not a database this version writes, or is damaged, the
next run builds it again from every record and state (written aside, then renamed in). One writer (the run
holding the dataset's lock) keeps it up to date, one file at a time, crash-safe: before a record or state
is written its name is put in ``dirty`` (committed), after the file is written its row replaces the old
one and the name leaves ``dirty`` (one transaction). A run killed between the two leaves the name in
``dirty``; the next opening reads that file again. ``bids-factory check`` compares the index with the files.

It also keeps the export's day folders as the last run listed them (``days``: the folder's modification
time and its visit folders), so discovery need not walk an old day again (:mod:`bids_factory.discover.visits`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

from bids_factory.errors import DatasetError
from bids_factory.model import VISIT_RECORD_VERSION, VISIT_STATE_VERSION
from bids_factory.write.dataset_paths import VISIT_INDEX, VISIT_RECORDS, VISIT_STATES

log = logging.getLogger(__name__)
INDEX_VERSION = "2"  # 2: no to_decide column (the groups of what to do come from the outcomes)
RECORD, STATE = "record", "state"
_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE records(name TEXT PRIMARY KEY, scan_research_id TEXT, participant_id TEXT, session_id TEXT,
    export_days TEXT, images INTEGER, gone INTEGER, pending INTEGER, left_lines TEXT, moved_from TEXT);
CREATE TABLE states(name TEXT PRIMARY KEY, scan_research_id TEXT, fingerprint TEXT, settings TEXT, status TEXT,
    subject_label TEXT, session_label TEXT);
CREATE TABLE not_placed(kind TEXT, owner TEXT, scan_research_id TEXT, status TEXT, outcome TEXT);
CREATE INDEX not_placed_owner ON not_placed(kind, owner);
CREATE TABLE dirty(kind TEXT, name TEXT, PRIMARY KEY(kind, name));
CREATE TABLE days(relpath TEXT PRIMARY KEY, listing TEXT);
"""
_FOLDERS = {RECORD: VISIT_RECORDS, STATE: VISIT_STATES}
# the newest record and state formats of the files indexed: an index a newer bids-factory kept stops the run
_VERSIONS = {"record_version": VISIT_RECORD_VERSION, "state_version": VISIT_STATE_VERSION}


class VisitIndex:
    """The index of one dataset; ``read(kind, path)`` reads a record or state file (versions checked)."""

    def __init__(self, root: Path, read: Callable[[str, Path], dict]):
        self.root = root
        self.path = root / VISIT_INDEX
        self._read = read
        self._db: sqlite3.Connection | None = None

    # -- opening, rebuilding ---------------------------------------------------------------
    def db(self) -> sqlite3.Connection:
        """The open index: rebuilt first when missing or damaged; names a killed run left dirty read again."""
        if self._db is None:
            self._db = self._open() or self.rebuild()
            self._replay_dirty()
        return self._db

    def _open_quietly(self) -> sqlite3.Connection | None:
        db = self._open()
        if db is not None:
            db.close()
        return db

    def _open(self) -> sqlite3.Connection | None:
        if not self.path.is_file():
            return None
        db = None
        try:
            db = sqlite3.connect(self.path, timeout=60)
            found = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            db.execute("SELECT count(*) FROM records, states, not_placed, dirty, days WHERE 0").fetchone()
            if found == (INDEX_VERSION,):
                self._refuse_newer(db)
                return db
            log.info("visit index %s: another version (%s): built again", self.path, found)
        except DatasetError:
            db.close()
            raise
        except sqlite3.DatabaseError as exc:
            log.warning("visit index %s is damaged (%s): built again from the visit records", self.path, exc)
        if db is not None:
            db.close()
        return None

    def rebuild(self) -> sqlite3.Connection:
        """The index built from every visit record and state: refilled in one transaction when it is a
        database; else built aside and moved in (a run killed meanwhile leaves the old index, or none).
        A missing index is claimed with a link, never replaced: two runs starting at once share one."""
        db = self._db or self._open()
        if db is not None:
            self._db = db
            self._fill(db)
            return db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for left in self.path.parent.glob(f".{self.path.name}.*.tmp"):  # a killed run's
            if not _alive(left.name.split(".")[-2]):
                left.unlink(missing_ok=True)
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        built = sqlite3.connect(aside)
        built.executescript(_SCHEMA)
        self._fill(built)
        built.close()
        try:
            os.link(aside, self.path)
        except FileExistsError:  # damaged, or another run built it meanwhile: theirs when it opens
            if self._open_quietly() is None:
                os.replace(aside, self.path)
        finally:
            aside.unlink(missing_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        return self._db

    def _fill(self, db: sqlite3.Connection) -> None:
        for table in ("meta", "records", "states", "not_placed", "dirty", "days"):
            db.execute(f"DELETE FROM {table}")
        db.execute("INSERT INTO meta VALUES ('version', ?)", (INDEX_VERSION,))
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in _VERSIONS.items()])
        for kind, folder in _FOLDERS.items():
            for path in sorted((self.root / folder).glob("*.json")) if (self.root / folder).is_dir() else ():
                self._put(db, kind, path.name, self._read(kind, path))
        db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _refuse_newer(self, db: sqlite3.Connection) -> None:
        """Records or states of a format this bids-factory does not know were indexed (a newer one wrote them)."""
        for key, known in _VERSIONS.items():
            found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if found and int(found[0]) > known:
                raise DatasetError(f"{self.path}: {key} {found[0]} is not one this bids-factory reads (1 to {known}): "
                                   "it was written by a newer version; run that version (or a newer one) on this dataset")

    def _replay_dirty(self) -> None:
        db = self._db
        names = db.execute("SELECT kind, name FROM dirty").fetchall()
        for kind, name in names:
            path = self.root / _FOLDERS[kind] / name
            self._put(db, kind, name, self._read(kind, path) if path.is_file() else None)
        if names:
            db.execute("DELETE FROM dirty")
            db.commit()

    # -- one writer: a record or a state written or removed --------------------------------
    def will_write(self, kind: str, name: str) -> None:
        """Before the file ``name`` is written or removed: a run killed before :meth:`wrote` leaves it dirty."""
        db = self.db()
        db.execute("INSERT OR IGNORE INTO dirty VALUES (?, ?)", (kind, name))
        db.commit()

    def wrote(self, kind: str, name: str, data: dict | None) -> None:
        """After the file ``name`` is written (``data``) or removed (None)."""
        db = self.db()
        self._put(db, kind, name, data)
        db.execute("DELETE FROM dirty WHERE kind = ? AND name = ?", (kind, name))
        db.commit()

    @staticmethod
    def _put(db: sqlite3.Connection, kind: str, name: str, data: dict | None) -> None:
        table = "records" if kind == RECORD else "states"
        db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
        db.execute("DELETE FROM not_placed WHERE kind = ? AND owner = ?", (kind, name))
        if data is None:
            return
        visit = data.get("scan_research_id")
        if kind == RECORD:
            folders = data.get("export_folders") or []
            db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                name, visit, data.get("participant_id"), data.get("session_id"),
                ",".join(sorted({str(f.get("day")) for f in folders})), len(data.get("files") or []),
                int(all(f.get("gone") for f in folders)), int(bool(data.get("pending_changes"))),
                json.dumps(data.get("left") or []), json.dumps(data.get("moved_from") or [])))
            outcomes = data.get("not_placed") or []
        else:
            db.execute("INSERT INTO states VALUES (?, ?, ?, ?, ?, ?, ?)", (
                name, visit, data.get("fingerprint"), data.get("settings"), data.get("status"),
                data.get("subject_label", ""), data.get("session_label", "")))
            outcomes = data.get("not_placed") or []
        db.executemany("INSERT INTO not_placed VALUES (?, ?, ?, ?, ?)",
                       [(kind, name, visit, o.get("status"), json.dumps(o)) for o in outcomes])

    # -- what a run reads -------------------------------------------------------------------
    def states(self) -> dict[str, dict]:
        """scan_research_id -> what a run compares (fingerprint, settings, status, labels)."""
        rows = self.db().execute("SELECT scan_research_id, fingerprint, settings, status, subject_label, "
                                 "session_label FROM states")
        return {row[0]: {"scan_research_id": row[0], "fingerprint": row[1], "settings": row[2], "status": row[3],
                         "subject_label": row[4], "session_label": row[5]} for row in rows}

    def visits(self, pending_only: bool = False) -> Iterator[dict]:
        """Every placed visit (``pending_only``: with changes to decide), in record name order, as a light
        record: ``name``, ``scan_research_id``, ``participant_id``, ``session_id``, ``export_days`` (list),
        ``images``, ``gone`` (every folder purged), ``pending``, ``left`` and ``moved_from`` (as in the record)."""
        rows = self.db().execute("SELECT name, scan_research_id, participant_id, session_id, export_days, images, "
                                 "gone, pending, left_lines, moved_from FROM records "
                                 f"{'WHERE pending ' if pending_only else ''}ORDER BY name")
        for row in rows:
            yield {"name": row[0], "scan_research_id": row[1], "participant_id": row[2], "session_id": row[3],
                   "export_days": [d for d in row[4].split(",") if d], "images": row[5], "gone": bool(row[6]),
                   "pending": bool(row[7]), "left": json.loads(row[8]), "moved_from": json.loads(row[9])}

    def not_gone(self) -> list[tuple[str, str]]:
        """(record name, scan_research_id) of every placed visit with an export folder not known to be gone."""
        return self.db().execute("SELECT name, scan_research_id FROM records WHERE gone = 0 ORDER BY name").fetchall()

    def sessions(self) -> list[tuple[str, str, str]]:
        """(participant_id, session_id, scan_research_id) of every placed visit."""
        return self.db().execute("SELECT participant_id, session_id, scan_research_id FROM records").fetchall()

    def counts(self) -> dict:
        """The whole dataset: ``subjects``, ``sessions``, ``images``, ``not_placed`` (status -> series not
        placed, of placed visits and of visits with nothing placed); what a person must do about them:
        :meth:`not_placed_groups`."""
        db = self.db()
        subjects, sessions, images = db.execute(
            "SELECT count(DISTINCT participant_id), count(DISTINCT participant_id || '/' || session_id), "
            "coalesce(sum(images), 0) FROM records").fetchone()
        statuses = dict(db.execute(
            "SELECT status, count(*) FROM not_placed GROUP BY status").fetchall())
        return {"subjects": subjects, "sessions": sessions, "images": images, "not_placed": statuses}

    def not_placed(self) -> Iterator[dict]:
        """Every series still not placed in the dataset (its outcome record with ``scan_research_id``), one at
        a time: of placed visits, and of visits with nothing placed."""
        rows = self.db().execute(
            "SELECT scan_research_id, outcome FROM not_placed ORDER BY scan_research_id, rowid")
        for visit, outcome in rows:
            yield json.loads(outcome) | {"scan_research_id": visit}

    def not_placed_groups(self, shown: int = 10) -> list[dict]:
        """Series still not placed, identical ones (group, status, SeriesDescription, ImageType, reason) counted
        once, for :func:`bids_factory.report.summary.merged_groups` (which shortens the reasons): ``count``,
        ``visit_count`` and the first ``shown`` visits; no page need hold them all."""
        rows = self.db().execute(
            "SELECT json_extract(outcome, '$.group'), json_extract(outcome, '$.status'), "
            "json_extract(outcome, '$.SeriesDescription'), coalesce(json_extract(outcome, '$.ImageType'), '[]'), "
            "coalesce(json_extract(outcome, '$.reason'), ''), count(*), count(DISTINCT scan_research_id), "
            "json_group_array(DISTINCT scan_research_id) FROM not_placed GROUP BY 1, 2, 3, 4, 5 ORDER BY 2, 3, 5")
        return [{"group": group, "status": status, "SeriesDescription": description, "ImageType": json.loads(image_type),
                 "reason": reason, "count": count, "visit_count": visits, "visits": sorted(json.loads(ids))[:shown]}
                for group, status, description, image_type, reason, count, visits, ids in rows]

    def unplaced_visits(self) -> list[dict]:
        """The visits with nothing placed whose series are not placed (their states, with ``not_placed``)."""
        visits: dict[str, dict] = {}
        rows = self.db().execute(
            "SELECT s.scan_research_id, s.status, s.subject_label, s.session_label, n.outcome FROM not_placed n "
            "JOIN states s ON n.kind = 'state' AND n.owner = s.name ORDER BY s.name, n.rowid")
        for visit, status, subject, session, outcome in rows:
            visits.setdefault(visit, {"scan_research_id": visit, "status": status, "subject_label": subject,
                                      "session_label": session, "not_placed": []})["not_placed"].append(
                json.loads(outcome))
        return list(visits.values())

    def differences(self) -> list[str]:
        """What the index says that the files do not (for ``bids-factory check``): one line per record or state
        missing, extra or different in the index."""
        found = []
        db = self.db()
        for kind, folder in _FOLDERS.items():
            table = "records" if kind == RECORD else "states"
            indexed = {name for name, in db.execute(f"SELECT name FROM {table}")}
            on_disk = {p.name: p for p in (self.root / folder).glob("*.json")} if (self.root / folder).is_dir() else {}
            found += [f"{folder.as_posix()}/{n}: in the index, not on disk" for n in sorted(indexed - set(on_disk))]
            found += [f"{folder.as_posix()}/{n}: on disk, not in the index" for n in sorted(set(on_disk) - indexed)]
            expected = sqlite3.connect(":memory:")
            expected.executescript(_SCHEMA)
            for name in sorted(indexed & set(on_disk)):
                self._put(expected, kind, name, self._read(kind, on_disk[name]))
                query = f"SELECT * FROM {table} WHERE name = ?"
                outcomes = "SELECT outcome FROM not_placed WHERE kind = ? AND owner = ? ORDER BY rowid"
                if expected.execute(query, (name,)).fetchall() != db.execute(query, (name,)).fetchall() or \
                        expected.execute(outcomes, (kind, name)).fetchall() != db.execute(outcomes, (kind, name)).fetchall():
                    found.append(f"{folder.as_posix()}/{name}: the index differs from the file")
            expected.close()
        return found

    # -- the export's day folders, as last listed ----------------------------------------------
    def day_listings(self) -> dict[str, dict]:
        """Export-relative day folder -> its listing by the last run that listed it
        (:attr:`bids_factory.discover.visits.Discovery.listings`)."""
        return {relpath: json.loads(listing) for relpath, listing in self.db().execute("SELECT * FROM days")}

    def store_day_listings(self, listings: dict[str, dict], forget: bool) -> None:
        """Listings of the day folders listed by this run; ``forget``: drop every other (a full walk)."""
        db = self.db()
        if forget:
            db.execute("DELETE FROM days")
        db.executemany("INSERT OR REPLACE INTO days VALUES (?, ?)",
                       [(relpath, json.dumps(listing)) for relpath, listing in listings.items()])
        db.commit()


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (of a file's name) still runs on this host."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True
