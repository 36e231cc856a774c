"""Sidecar schemas on real scanner data: what is a well-defined image, and no patient key ever passes."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import dcm2niix
import pytest

from bids_factory.privacy.deidentify import DEIDENTIFICATION_KEYS, PATIENT_KEYS, SITE_KEYS, allowed_keys, keep_allowed
from bids_factory.privacy.visit_identifiers import VisitIdentifiers
from bids_factory.errors import BidsFactoryError
from bids_factory.model import Placement, Series
from bids_factory.checks.sidecar_schemas import (SidecarSchemaError, check_placement, default_folder, header_facts,
                                        load_sidecar_schemas)
from conftest import REPO, SHARED_DICOM

XA30 = SHARED_DICOM / "siemens_xa30_visit"
GE_T1W = SHARED_DICOM / "ge_t1w_deidentified"
DOCS = REPO / "docs" / "schemas.md"
SUFFIX_SCHEMAS = ("T1w", "T2w", "FLAIR", "bold", "dwi", "magnitude1", "magnitude2", "phasediff", "epi")


def _convert(source: Path, out: Path, anonymize: bool = True) -> dict[str, Path]:
    """dcm2niix into ``out``; the NIfTI files by name."""
    out.mkdir(parents=True)
    subprocess.run([dcm2niix.bin, "-b", "y", "-ba", "y" if anonymize else "n", "-z", "y", "-o", str(out), str(source)],
                   check=True, capture_output=True)
    return {p.name: p for p in out.glob("*.nii.gz")}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """One NIfTI per series of interest, converted from the shared DICOM data."""
    root = tmp_path_factory.mktemp("dcm2niix")
    found: dict[str, Path] = {}
    (found["ge_t1w"],) = _convert(GE_T1W, root / "ge").values()
    for key, folder in [("xa30_t1w", "5_anat-T1w_acq-tfl"), ("xa30_bold", "7_func-bold_task-fa_run-1"),
                        ("xa30_phase", "9_gre_field_mapping"), ("xa30_dwi", "10_DWI_dir80_PA"),
                        ("xa30_adc", "11_DWI_dir80_PA")]:
        (found[key],) = _convert(XA30 / folder, root / folder).values()
    magnitudes = _convert(XA30 / "8_gre_field_mapping", root / "8_gre_field_mapping")
    found["xa30_magnitude1"] = next(p for name, p in magnitudes.items() if name.endswith("_e1.nii.gz"))
    found["xa30_magnitude2"] = next(p for name, p in magnitudes.items() if name.endswith("_e2.nii.gz"))
    (found["xa30_t1w_raw"],) = _convert(XA30 / "5_anat-T1w_acq-tfl", root / "raw", anonymize=False).values()
    return found


@pytest.fixture(scope="module")
def schemas():
    return load_sidecar_schemas()


def scrub(sidecar: dict) -> dict:
    """What plan keeps of a sidecar (allow-list, no identifier of the visit known here)."""
    return keep_allowed(sidecar, "anat", "T1w", VisitIdentifiers())


def _sidecar(nifti: Path) -> dict:
    return json.loads(nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json").read_text())


def placement(nifti: Path, suffix: str, sidecar: dict | None = None, **changes) -> Placement:
    """What plan gives for this series: the scrubbed dcm2niix sidecar, plus ``changes``."""
    content = scrub(_sidecar(nifti)) if sidecar is None else dict(sidecar)
    content.update(changes)
    series = Series(nifti=nifti, sidecar=nifti.with_suffix(".json"), extras=(), series_number=None,
                    series_description="", protocol_name="", image_type=(), source_folders=())
    return Placement(series=series, datatype="anat", stem=f"sub-01_ses-01_{suffix}", sidecar=content, rule="test")


@pytest.mark.realdata
def test_ge_t1w_is_well_defined_for_morphometry(schemas, converted):
    ge = converted["ge_t1w"]
    # GE "Accelerated SAG IR-SPGR": 196 sagittal slices of 1.2 mm, 1.0547 mm in plane.
    assert header_facts(ge) == {"ImageDimensions": [196, 256, 256], "VoxelSize": [1.2, 1.0547, 1.0547]}
    assert check_placement(schemas, placement(ge, "T1w")) == []


@pytest.mark.realdata
def test_xa30_t1w_is_held_back_its_voxels_are_2mm(schemas, converted):
    # The dcm_qa_xa30 T1w is a quick 2 mm isotropic validation scan, not MIP grade (max. 1.5 mm).
    xa30 = converted["xa30_t1w"]
    assert header_facts(xa30) == {"ImageDimensions": [96, 128, 128], "VoxelSize": [2.0, 2.0, 2.0]}
    assert check_placement(schemas, placement(xa30, "T1w")) == [  # in words, once for the three axes
        "voxel size 2 x 2 x 2 mm is larger than the T1w schema's limit of 1.5 mm (MIP: high-resolution, max. 1.5 mm)"
    ]


@pytest.mark.realdata
def test_ge_t1w_made_2d_or_derived_is_refused_with_the_reason(schemas, converted):
    ge = converted["ge_t1w"]
    assert check_placement(schemas, placement(ge, "T1w", MRAcquisitionType="2D")) == [
        "MRAcquisitionType is '2D', the T1w schema requires '3D' (morphometry takes a 3D acquisition)"
    ]
    derived = check_placement(schemas, placement(ge, "T1w", ImageType=["DERIVED", "SECONDARY", "MPR"]))
    assert "ImageType 'DERIVED' is not allowed by the T1w schema" in derived[1]
    assert derived[0] == ("ImageType DERIVED/SECONDARY/MPR has no 'PRIMARY', which the T1w schema requires "
                          "(MIP: only PRIMARY images)")
    assert check_placement(schemas, placement(ge, "T1w", MagneticFieldStrength=3000)) == [
        "MagneticFieldStrength 3000 is larger than the T1w schema's limit of 7 (morphometry: 1.5 T to 7 T)"
    ]
    missing = scrub(_sidecar(ge))
    del missing["SeriesDescription"]
    assert check_placement(schemas, placement(ge, "T1w", sidecar=missing)) == [
        "SeriesDescription is missing: the T1w schema requires it (MIP mandatory DICOM tag (must be stable over time))"
    ]


def _strict_copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "site-schemas"
    shutil.copytree(default_folder(), folder)
    strict = json.loads((folder / "T1w.schema.json").read_text())
    strict["properties"]["VoxelSize"]["items"].update(maximum=1.0, title="site: max. 1.0 mm")
    (folder / f"{name}.schema.json").write_text(json.dumps(strict))
    return folder


@pytest.mark.realdata
def test_a_site_folder_with_a_stricter_voxel_bound_refuses_the_ge_t1w(tmp_path, converted):
    site = load_sidecar_schemas(_strict_copy(tmp_path, "T1w"))
    assert check_placement(site, placement(converted["ge_t1w"], "T1w")) == [
        "voxel size 1.2 x 1.05 x 1.05 mm is larger than the T1w schema's limit of 1 mm (site: max. 1.0 mm)",
    ]


@pytest.mark.realdata
def test_a_heuristic_rule_can_name_its_schema(tmp_path, converted):
    site = load_sidecar_schemas(_strict_copy(tmp_path, "T1w-strict"))
    ge = placement(converted["ge_t1w"], "T1w")
    assert check_placement(site, ge) == []  # by suffix: the shipped bound
    assert check_placement(site, ge, "T1w-strict") == [
        "voxel size 1.2 x 1.05 x 1.05 mm is larger than the T1w-strict schema's limit of 1 mm (site: max. 1.0 mm)"]
    assert "'T1w-strcit' named by the heuristic rule is not in" in check_placement(site, ge, "T1w-strcit")[0]


@pytest.mark.realdata
def test_a_suffix_without_schema_is_accepted(schemas, converted):
    assert check_placement(schemas, placement(converted["xa30_adc"], "asl")) == []


@pytest.mark.realdata
def test_xa30_bold_dwi_and_fieldmaps_are_well_defined(schemas, converted):
    assert check_placement(schemas, placement(converted["xa30_bold"], "bold", TaskName="fa")) == []
    assert check_placement(schemas, placement(converted["xa30_dwi"], "dwi")) == []
    assert check_placement(schemas, placement(converted["xa30_magnitude1"], "magnitude1")) == []
    assert check_placement(schemas, placement(converted["xa30_magnitude2"], "magnitude2")) == []
    phase = placement(converted["xa30_phase"], "phasediff")
    assert (phase.sidecar["EchoTime1"], phase.sidecar["EchoTime2"]) == (0.01, 0.01246)
    assert check_placement(schemas, phase) == []
    # The BOLD run's EPI also serves as a PEpolar fieldmap: PhaseEncodingDirection j-, TotalReadoutTime set.
    assert check_placement(schemas, placement(converted["xa30_bold"], "epi")) == []


@pytest.mark.realdata
def test_xa30_series_missing_what_bids_requires_are_refused(schemas, converted):
    assert check_placement(schemas, placement(converted["xa30_bold"], "bold")) == [
        "TaskName is missing: the bold schema requires it (BIDS: REQUIRED for bold)"
    ]
    bold = scrub(_sidecar(converted["xa30_bold"]))
    del bold["TotalReadoutTime"]
    assert check_placement(schemas, placement(converted["xa30_bold"], "epi", sidecar=bold)) == [
        "TotalReadoutTime is missing: the epi schema requires it (BIDS: seconds; a larger value is milliseconds)"
    ]
    del bold["EchoTime"]
    assert check_placement(schemas, placement(converted["xa30_phase"], "phasediff", sidecar=bold)) == [
        "EchoTime1 is missing: the phasediff schema requires it (BIDS: seconds (first, shorter echo))",
        "EchoTime2 is missing: the phasediff schema requires it (BIDS: seconds (second, longer echo))",
    ]
    # The scanner's ADC map (DERIVED, one volume) placed as dwi.
    assert check_placement(schemas, placement(converted["xa30_adc"], "dwi")) == [
        "image of 72 x 72 x 39 voxels: 3 dimensions, the dwi schema requires at least 4 "
        "(4 dimensions (a series of volumes))",
        "ImageType 'DERIVED' is not allowed by the dwi schema "
        "(MIP: only original images (DERIVED images are scanner-computed maps, BIDS derivatives))",
    ]


@pytest.mark.realdata
def test_the_real_patient_fields_are_refused_by_every_schema(schemas, converted):
    raw_nifti = converted["xa30_t1w_raw"]
    raw = _sidecar(raw_nifti)  # dcm2niix -ba n: the XA30 headers' patient fields
    present = sorted(set(raw) & set(PATIENT_KEYS))
    assert {"PatientName", "PatientBirthDate"} <= set(present)
    values = [str(raw[key]) for key in present if len(str(raw[key])) >= 5]  # not "M" (PatientSex), found in "MIP"
    assert {str(raw["PatientName"]), str(raw["PatientID"])} <= set(values)
    for name in SUFFIX_SCHEMAS:
        messages = check_placement(schemas, placement(raw_nifti, name, sidecar=raw))
        for key in present:
            assert (f"{key} must never appear in a sidecar "
                    "(direct identifier: on the de-identification deny list)") in messages
        assert not any(value in message for value in values for message in messages), "a message leaks a value"
    assert not any("must never appear" in m for m in check_placement(schemas, placement(raw_nifti, "T1w")))


@pytest.mark.realdata
@pytest.mark.parametrize("name", SUFFIX_SCHEMAS)
def test_every_schema_forbids_every_key_of_the_deny_list(schemas, converted, name):
    clean = check_placement(schemas, placement(converted["xa30_bold"], name, TaskName="fa"))
    for key in PATIENT_KEYS:
        messages = check_placement(schemas, placement(converted["xa30_bold"], name, TaskName="fa", **{key: "x"}))
        assert sorted(messages) == sorted([*clean, f"{key} must never appear in a sidecar "
                                                   "(direct identifier: on the de-identification deny list)"])


def test_the_forbidden_schema_and_the_docs_list_exactly_the_deny_list():
    forbidden = json.loads((default_folder() / "forbidden.schema.json").read_text())
    assert set(forbidden["properties"]) == set(PATIENT_KEYS)
    assert set(forbidden["$defs"]["site"]["properties"]) == set(SITE_KEYS)
    for name in SUFFIX_SCHEMAS:
        schema = json.loads((default_folder() / f"{name}.schema.json").read_text())
        assert {"$ref": "forbidden.schema.json"} in schema["allOf"]
    docs = DOCS.read_text()
    assert all(f"`{key}`" in docs for key in PATIENT_KEYS + SITE_KEYS)


@pytest.mark.realdata
def test_the_deidentification_record_of_the_ge_headers_is_kept_in_bids_form(schemas, converted):
    ge = _sidecar(converted["ge_t1w"])
    scrubbed = scrub(ge)
    assert scrubbed["DeidentificationMethod"] == ["mri_reface 0.3.4", "Per DICOM PS 3.15 AnnexE. Details in 0012,0064"]
    codes = [item["CodeValue"] for item in scrubbed["DeidentificationMethodCodeSequence"]]
    assert codes == ["113102", "replace_recognizable", "113100", "113107", "113111"]
    assert set(DEIDENTIFICATION_KEYS) <= allowed_keys("anat", "T1w")
    assert not set(PATIENT_KEYS) & allowed_keys("anat", "T1w", keep_site_fields=True)
    one = scrub({"DeidentificationMethod": "CTP", "DeidentificationMethodCodeSequence": {"CodeValue": "113100"},
                 "PatientIdentityRemoved": "YES", "PatientName": "X"})
    assert one == {"DeidentificationMethod": ["CTP"], "PatientIdentityRemoved": "YES",
                   "DeidentificationMethodCodeSequence": [{"CodeValue": "113100"}]}
    assert check_placement(schemas, placement(converted["ge_t1w"], "T1w", PatientIdentityRemoved="YES")) == []
    assert check_placement(schemas, placement(converted["ge_t1w"], "T1w", DeidentificationMethod="CTP")) == [
        "DeidentificationMethod 'CTP' is not of type 'array', as the T1w schema requires "
        "(BIDS: array of strings (DICOM (0012,0063)))"
    ]


@pytest.mark.realdata
def test_unreadable_nifti_is_a_fault(schemas, tmp_path, converted):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    messages = check_placement(schemas, placement(broken, "T1w", sidecar=scrub(_sidecar(converted["ge_t1w"]))))
    assert len(messages) == 1
    assert messages[0].startswith("cannot read the NIfTI header of broken.nii.gz to check it against the T1w schema")


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "schemas"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_broken_schema_folder_gives_a_clear_error(tmp_path):
    with pytest.raises(SidecarSchemaError, match=r"T1w\.schema\.json: not valid JSON at line 2, column 1"):
        load_sidecar_schemas(_folder(tmp_path / "a", {"T1w.schema.json": '{"type": "object",\n}'}))
    with pytest.raises(SidecarSchemaError, match=r"bold\.schema\.json: not a valid JSON Schema at properties/x"):
        load_sidecar_schemas(_folder(tmp_path / "b", {"bold.schema.json": '{"properties": {"x": {"type": 12}}}'}))
    with pytest.raises(SidecarSchemaError, match=r"dwi\.schema\.json: cannot resolve \$ref"):
        load_sidecar_schemas(_folder(tmp_path / "c", {"dwi.schema.json": '{"allOf": [{"$ref": "no.schema.json"}]}'}))
    with pytest.raises(SidecarSchemaError, match="no \\*.schema.json file in it"):
        load_sidecar_schemas(_folder(tmp_path / "d", {"README": "x"}))
    with pytest.raises(SidecarSchemaError, match="not a folder"):
        load_sidecar_schemas(tmp_path / "nowhere")
    assert issubclass(SidecarSchemaError, BidsFactoryError)


def test_the_shipped_schemas_load_and_travel_to_worker_processes(schemas):
    assert set(SUFFIX_SCHEMAS) <= set(schemas.names)
    copy = pickle.loads(pickle.dumps(schemas))
    assert copy.names == schemas.names and copy.folder == default_folder().resolve()
