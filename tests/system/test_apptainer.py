"""Apptainer for real: SIFs built with Debian's apptainer (Debian sid; not packaged for bookworm) in a
debootstrapped root entered through a private mount namespace (tests/container/apptainer_root.sh and
apptainer_enter.sh), (a) from the image the container tests build (podman save, docker-archive://) and
(b) from Singularity.def's own sections with its registry header swapped for a local docker-archive.
Each runs `apptainer run --no-privs --containall` on real shared data, the export bound read-only, and
the dataset equals a local run's, validator-clean. The SLURM run through the SIF is in
test_slurm_cluster.py (same cluster fixture). Marked ``container`` and ``apptainer`` (root).

What the machine keeps between runs (tests/system/container_images.py): the sid root and the SIFs
under /var/cache/bids-factory-tests, podman's layer cache.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from container_images import (SLOW, TIMINGS, VERSION, dataset_files, differences, documented_block, in_sid_root, labels,
                              sif_from_def, sif_from_image, tail, three_visits)

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import assert_valid_bids, fingerprint

pytestmark = [pytest.mark.container, pytest.mark.apptainer, SLOW]

DATASET_NAME = "Apptainer test"


@pytest.fixture(scope="module", autouse=True)
def _print_timings(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if TIMINGS and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for key, value in TIMINGS.items():
                reporter.write_line(f"apptainer: {key}: {value}")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return three_visits(tmp_path_factory.mktemp("apptainer-export") / "export")


@pytest.fixture(scope="module")
def local_dataset(export, tmp_path_factory) -> dict[str, bytes]:
    bids = tmp_path_factory.mktemp("apptainer-local") / "bids"
    convert(ConvertOptions(export=export, bids=bids, dataset_name=DATASET_NAME))
    return dataset_files(bids)


def _convert_in_sif(sif, export, bids) -> subprocess.CompletedProcess:
    """The README's command: the export read-only at /data/export, the dataset at /data/bids."""
    bids.mkdir()
    return in_sid_root([f"{export}:ro", str(bids), f"{sif.parent}:ro"], [
        "apptainer", "run", "--no-privs", "--containall",
        "--bind", f"{export}:/data/export:ro", "--bind", f"{bids}:/data/bids",
        str(sif), "convert", "/data/export", "/data/bids", "--dataset-name", DATASET_NAME], check=False)


@pytest.mark.parametrize("made_from", ["the Docker image", "Singularity.def"])
def test_sif_converts_like_a_local_run(made_from, export, local_dataset, tmp_path):
    sif = sif_from_image() if made_from == "the Docker image" else sif_from_def()
    assert labels(sif)["org.opencontainers.image.version"] == VERSION
    before = fingerprint(export)
    bids = tmp_path / "bids"
    proc = _convert_in_sif(sif, export, bids)
    assert proc.returncode == 0, tail(proc)
    assert "BIDS validator: 0 errors" in proc.stdout, tail(proc)
    assert differences(local_dataset, dataset_files(bids)) == []
    assert len([name for name in local_dataset if name.endswith(".nii.gz")]) == 5  # bold, 3 fieldmaps, GE T1w
    assert_valid_bids(bids)
    assert fingerprint(export) == before


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_documented_apptainer_run_as_written(user, export, local_dataset, tmp_path):
    """docs/containers.md's `apptainer run` block, exactly as written, in a folder holding bids-factory.sif,
    as root and as an unprivileged user (apptainer in a user namespace); the dataset belongs to that user."""
    work, bids = tmp_path / "work", tmp_path / "bids"
    work.mkdir()
    bids.mkdir()
    sif = sif_from_image()
    (work / "bids-factory.sif").symlink_to(sif)
    uid = {"root": 0, "nobody": 65534}[user]
    os.chown(bids, uid, uid)
    block = documented_block("apptainer-run")
    proc = in_sid_root([f"{export}:ro", str(bids), str(work), f"{sif.parent}:ro"], [
        "env", f"EXPORT={export}", f"BIDS={bids}", "sh", "-c", 'cd "$1" && exec runuser -u "$2" -- bash -euc "$3"',
        "sh", str(work), user, block], check=False)
    assert proc.returncode == 0, tail(proc)
    named = {"README.md", "dataset_description.json"}  # the documented command gives no --dataset-name
    got = dataset_files(bids)
    assert differences({k: v for k, v in local_dataset.items() if k not in named},
                       {k: v for k, v in got.items() if k not in named}) == []
    assert named <= set(got)
    assert {path.stat().st_uid for path in bids.rglob("*")} == {uid}
