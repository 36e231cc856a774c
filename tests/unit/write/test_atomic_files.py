"""The writer's primitive: a file written whole or not at all, never rewritten when its content is the same."""

from __future__ import annotations

import os

import pytest

from bids_factory.write import atomic_files
from bids_factory.write.atomic_files import write_bytes, write_text


def test_a_write_killed_before_its_rename_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "sub-01" / "sub-01_sessions.tsv"
    write_text(target, "session_id\nses-1\n")

    def killed(*_):
        raise KeyboardInterrupt  # a signal between the temporary file's data and its rename
    monkeypatch.setattr(atomic_files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text(target, "session_id\nses-1\nses-2\n")
    assert target.read_text() == "session_id\nses-1\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["sub-01_sessions.tsv"]


def test_the_same_content_is_not_written_again_and_new_content_replaces_the_file(tmp_path):
    target = tmp_path / "dataset_description.json"
    assert write_bytes(target, b"{}\n") is True
    inode = target.stat().st_ino
    assert write_bytes(target, b"{}\n") is False and target.stat().st_ino == inode  # a no-op run touches nothing
    assert write_bytes(target, b'{"Name": "x"}\n') is True
    assert target.read_bytes() == b'{"Name": "x"}\n' and target.stat().st_ino != inode  # renamed over, not edited


def test_a_temporary_folder_elsewhere_leaves_nothing_there_and_files_are_readable_by_others(tmp_path):
    staging = tmp_path / "tmp"
    staging.mkdir()
    target = tmp_path / "bids" / "README"
    write_text(target, "Hello\n", tmp_dir=staging)
    assert target.read_text() == "Hello\n" and not any(staging.iterdir())
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
