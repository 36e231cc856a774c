"""``writer.lock`` on its own: one holder at a time, and what a killed run left put back or dropped when the lock is
taken (a live or starting run's staging is kept: ``test_staging_recovery``)."""

from __future__ import annotations

import stat

import pytest

from bids_factory.errors import DatasetLockedError
from bids_factory.write.dataset_lock import DatasetLock
from bids_factory.write.dataset_paths import STATE_DIR


def test_the_lock_refuses_a_second_holder_until_the_first_lets_go(tmp_path):
    first, second = DatasetLock(tmp_path), DatasetLock(tmp_path)
    with first.held():
        with pytest.raises(DatasetLockedError, match="another bids-factory run is writing"):
            with second.held(wait=0):
                pass
        with pytest.raises(DatasetLockedError):
            second.ensure_free()
    second.ensure_free()
    with second.held():
        pass
    assert stat.S_IMODE((tmp_path / STATE_DIR).stat().st_mode) == 0o700  # it holds the subjects' key


def test_taking_the_lock_puts_back_a_session_a_killed_run_swapped_out_and_drops_its_leftovers(tmp_path):
    lock = DatasetLock(tmp_path)
    trash = lock.state_dir / "trash"
    (trash / "sub-A__ses-1" / "anat").mkdir(parents=True)  # killed between its two renames: the old one returns
    (trash / "sub-A__ses-1" / "anat" / "x.nii.gz").write_bytes(b"old")
    (trash / "sub-B__ses-2").mkdir()  # killed after the new one was renamed in: the old one goes
    (trash / "sub-B__ses-2" / "x.nii.gz").write_bytes(b"old")
    (tmp_path / "sub-B" / "ses-2").mkdir(parents=True)
    (tmp_path / "sub-B" / "ses-2" / "x.nii.gz").write_bytes(b"new")
    for left in ("tmp", "removed"):  # a text file not renamed yet, a session moved away
        (lock.state_dir / left).mkdir()
        (lock.state_dir / left / "f").write_text("half")
    with lock.held():
        pass
    assert (tmp_path / "sub-A" / "ses-1" / "anat" / "x.nii.gz").read_bytes() == b"old"
    assert (tmp_path / "sub-B" / "ses-2" / "x.nii.gz").read_bytes() == b"new"
    assert not trash.exists() and not (lock.state_dir / "tmp").exists() and not (lock.state_dir / "removed").exists()


def test_a_runs_staging_is_its_own_and_goes_with_it(tmp_path):
    lock = DatasetLock(tmp_path)
    with lock.staging_area() as one, lock.staging_area() as two:
        assert one != two and one.parent == two.parent == lock.state_dir / "staging"
        for name in ("visit-00000", "visit-00001"):
            (one / name).mkdir()
        lock.discard_staged(one, ["visit-00000"])
        assert sorted(p.name for p in one.iterdir()) == [".alive", "visit-00001"]
    assert not (lock.state_dir / "staging").exists()  # the last run leaving removes the folder of them all
