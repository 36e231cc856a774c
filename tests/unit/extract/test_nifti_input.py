"""NIfTI + JSON export variant: staging of one visit's files (nifti_input.stage_nifti_files).

The export is built from dcm2niix's output of the real scanner data in ``../shared/dicom`` with
``-ba n``, so the JSONs carry the patient fields as a hospital's NIfTI export would.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_factory.model import SourceFile, VisitFolder
from bids_factory.extract.nifti_visit import ORPHAN_IMAGE, stage_nifti_files
from bids_factory.extract.staged_images import image_stem
from conftest import GE_T1W, XA30, fingerprint

pytestmark = pytest.mark.realdata

XA30_ID, GE_ID = "12343@hucheng", "FRUIT"
DAY = "20240105"


def _dcm2niix(source: Path, out: Path, gzipped: bool) -> Path:
    import dcm2niix

    out.mkdir(parents=True)
    subprocess.run([dcm2niix.bin, "-b", "y", "-ba", "n", "-z", "y" if gzipped else "n", "-f", "%s_%p",
                    "-o", str(out), str(source)], check=True, capture_output=True)
    return out


def _visit(export: Path, visit: str) -> list[SourceFile]:
    """The files of NIFTI/<yyyy>/<day>/<visit> as discover hands them over."""
    path = export / "NIFTI" / DAY[:4] / DAY / visit
    folder = VisitFolder(kind="NIFTI", day=DAY, path=path, relpath=path.relative_to(export).as_posix())
    return [SourceFile(p, folder, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()]


def _visit_dir(export: Path, visit: str) -> Path:
    path = export / "NIFTI" / DAY[:4] / DAY / visit
    path.mkdir(parents=True, exist_ok=True)
    return path


def _image_name(source: Path) -> str:
    return source.name.removesuffix(".gz").removesuffix(".nii").removesuffix(".nifti")


def _staged_by_source(part) -> dict[str, object]:
    """Staged series by the export name they came from (staged names are ``<index>_<name>``)."""
    return {image_stem(s.nifti).split("_", 1)[1]: s for s in part.series}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dcm2niix")
    return {"xa30": _dcm2niix(XA30, root / "xa30", gzipped=False),
            "ge": _dcm2niix(GE_T1W, root / "ge", gzipped=True)}


@pytest.fixture(scope="module")
def nifti_export(converted, tmp_path_factory) -> Path:
    """VISIT01: the XA30 visit, images named .nifti, .nii, and one plain image misnamed .nii.gz;
    VISIT02: the GE T1w, gzipped, named .nifti."""
    export = tmp_path_factory.mktemp("nifti") / "export"
    visit01 = _visit_dir(export, "VISIT01")
    for index, image in enumerate(sorted(converted["xa30"].glob("*.nii"))):
        suffix = ".nifti" if index % 2 == 0 else ".nii"
        if image.name == "8_gre_field_mapping_e1.nii":
            suffix = ".nii.gz"  # plain bytes under a gzip name: the content decides
        shutil.copyfile(image, visit01 / (image.stem + suffix))
        for companion in image.parent.glob(image.stem + ".*"):
            if companion.suffix in (".json", ".bval", ".bvec"):
                shutil.copyfile(companion, visit01 / companion.name)
    visit02 = _visit_dir(export, "VISIT02")
    [ge] = converted["ge"].glob("*.nii.gz")
    shutil.copyfile(ge, visit02 / (_image_name(ge) + ".nifti"))
    shutil.copyfile(ge.with_name(_image_name(ge) + ".json"), visit02 / (_image_name(ge) + ".json"))
    return export


@pytest.fixture(scope="module")
def xa30_part(nifti_export, tmp_path_factory):
    before = fingerprint(nifti_export)
    part = stage_nifti_files(_visit(nifti_export, "VISIT01"), tmp_path_factory.mktemp("staging") / "v1")
    return part, before


def _assert_same_image(staged: Path, reference: Path) -> None:
    got, want = nib.load(staged), nib.load(reference)
    assert type(got) is type(want)
    assert got.shape == want.shape
    assert np.array_equal(got.affine, want.affine)
    assert np.array_equal(np.asanyarray(got.dataobj), np.asanyarray(want.dataobj))


def test_every_plain_image_staged_byte_for_byte_as_nii(xa30_part, converted):
    """A plain export image is copied as it is (gzipped later, only if it is placed: staged_images)."""
    part, _ = xa30_part
    references = {p.stem: p for p in converted["xa30"].glob("*.nii")}
    staged = _staged_by_source(part)
    assert part.problems == () and part.ignored_files == 0
    assert set(staged) == set(references) and len(references) == 21
    for name, series in staged.items():
        assert series.nifti.name.endswith(f"_{name}.nii")
        assert series.nifti.read_bytes() == references[name].read_bytes()  # not a byte changed, not resampled
        _assert_same_image(series.nifti, references[name])
    assert len({s.nifti for s in part.series}) == 21


def test_sidecar_copied_as_is_and_series_fields_read_from_it(xa30_part, converted):
    part, _ = xa30_part
    staged = _staged_by_source(part)
    t1w = staged["5_anat-T1w_acq-tfl"]
    assert t1w.sidecar.read_bytes() == (converted["xa30"] / "5_anat-T1w_acq-tfl.json").read_bytes()
    assert json.loads(t1w.sidecar.read_text())["PatientID"] == XA30_ID  # scrubbed later, by plan
    assert t1w.sidecar.parent == t1w.nifti.parent
    assert (t1w.series_number, t1w.series_description, t1w.protocol_name) == (5, "anat-T1w_acq-tfl",
                                                                               "anat-T1w_acq-tfl")
    assert t1w.image_type[:2] == ("ORIGINAL", "PRIMARY")
    assert t1w.source_folders == (f"NIFTI/2024/{DAY}/VISIT01",)
    assert staged["11_DWI_dir80_PA"].series_number == 11 and "DERIVED" in staged["11_DWI_dir80_PA"].image_type


def test_patient_id_read_from_the_json(xa30_part, nifti_export, tmp_path):
    part, _ = xa30_part
    assert part.patient_ids == frozenset({XA30_ID})
    ge = stage_nifti_files(_visit(nifti_export, "VISIT02"), tmp_path / "ge")
    assert ge.patient_ids == frozenset({GE_ID})


def test_patient_id_field_is_configurable(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    shutil.copyfile(converted["xa30"] / "6_anat-T1w_acq-tfl.nii", visit / "t1.nifti")
    sidecar = json.loads((converted["xa30"] / "6_anat-T1w_acq-tfl.json").read_text())
    sidecar.pop("PatientID")
    sidecar["HospitalPatientNumber"] = "P-0042"
    (visit / "t1.json").write_text(json.dumps(sidecar))
    assert stage_nifti_files(_visit(export, "V1"), tmp_path / "a").patient_ids == frozenset()
    custom = stage_nifti_files(_visit(export, "V1"), tmp_path / "b", patient_id_field="HospitalPatientNumber")
    assert custom.patient_ids == frozenset({"P-0042"}) and len(custom.series) == 1


def test_bval_bvec_staged_beside_the_dwi(xa30_part, converted):
    part, _ = xa30_part
    staged = _staged_by_source(part)
    for name in ("10_DWI_dir80_PA", "17_DWI_dir80_AP"):
        series = staged[name]
        stem = image_stem(series.nifti)
        assert sorted(p.name for p in series.extras) == [f"{stem}.bval", f"{stem}.bvec"]
        for extra in series.extras:
            assert extra.read_bytes() == (converted["xa30"] / f"{name}{extra.suffix}").read_bytes()
    assert all(not s.extras for n, s in staged.items() if n not in ("10_DWI_dir80_PA", "17_DWI_dir80_AP"))


def test_gzipped_nifti_is_copied_byte_for_byte(nifti_export, converted, tmp_path):
    part = stage_nifti_files(_visit(nifti_export, "VISIT02"), tmp_path / "ge")
    [ge] = converted["ge"].glob("*.nii.gz")
    [series] = part.series
    assert part.problems == ()
    assert series.nifti.read_bytes() == ge.read_bytes()
    _assert_same_image(series.nifti, ge)


def test_export_is_read_only_and_staging_holds_only_staged_files(xa30_part, nifti_export):
    part, before = xa30_part
    assert fingerprint(nifti_export) == before
    staging = part.series[0].nifti.parent
    expected = {p for s in part.series for p in (s.nifti, s.sidecar, *s.extras)}
    assert set(staging.iterdir()) == expected


def _small_pair(converted, visit: Path, name: str, suffix: str = ".nifti") -> None:
    shutil.copyfile(converted["xa30"] / "27_asl_2d_tra.nii", visit / f"{name}{suffix}")
    shutil.copyfile(converted["xa30"] / "27_asl_2d_tra.json", visit / f"{name}.json")


def _reasons(part) -> dict[str, str]:
    assert all(p.fatal != (p.reason == ORPHAN_IMAGE) for p in part.problems)  # an orphan image is a note
    assert not any(XA30_ID in p.reason or XA30_ID in p.path for p in part.problems)
    return {p.path.rsplit("/", 1)[1]: p.reason for p in part.problems}


def test_image_without_json_and_json_without_image_are_reported(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    _small_pair(converted, visit, "good")
    _small_pair(converted, visit, "orphan")
    (visit / "orphan.json").unlink()
    _small_pair(converted, visit, "lonely")
    (visit / "lonely.nifti").unlink()
    _small_pair(converted, visit, "half_dwi")
    (visit / "half_dwi.bval").write_text("0 1000\n")  # a .bval without its .bvec
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    reasons = _reasons(part)
    assert set(reasons) == {"orphan.nifti", "lonely.json", "half_dwi.nifti"}
    assert "image without a JSON sidecar" in reasons["orphan.nifti"]
    assert "JSON sidecar without an image" in reasons["lonely.json"]
    assert "no .bvec" in reasons["half_dwi.nifti"]
    assert [s.nifti.name for s in part.series] == ["0000_good.nii"]  # plain: gzipped only when placed
    assert part.patient_ids == frozenset({XA30_ID})


def test_same_name_in_two_subfolders_gives_two_series_but_two_images_one_name_is_reported(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    for sub in ("a", "b"):
        (visit / sub).mkdir()
        _small_pair(converted, visit / sub, "scan")
    _small_pair(converted, visit, "twice", ".nii")
    shutil.copyfile(visit / "twice.nii", visit / "twice.nifti")
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    assert len(part.series) == 2 and len({s.nifti for s in part.series}) == 2
    assert [p.path for p in part.problems] == [f"NIFTI/2024/{DAY}/V1/twice.nifti"]
    assert "2 images share one name" in part.problems[0].reason


def test_corrupt_images_are_reported_and_not_staged(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    for name in ("truncated", "cut_data", "cut_gzip", "not_nifti"):
        _small_pair(converted, visit, name)
    with open(visit / "truncated.nifti", "r+b") as handle:
        handle.truncate(100)
    with open(visit / "cut_data.nifti", "r+b") as handle:  # header intact, voxel data cut short
        handle.truncate(20_000)
    packed = gzip.compress((visit / "cut_gzip.nifti").read_bytes())
    (visit / "cut_gzip.nifti").write_bytes(packed[: len(packed) // 2])
    (visit / "not_nifti.nifti").write_bytes(b"%PDF-1.4 " + b"\0" * 600)
    _small_pair(converted, visit, "good")
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    reasons = _reasons(part)
    assert set(reasons) == {"truncated.nifti", "cut_data.nifti", "cut_gzip.nifti", "not_nifti.nifti"}
    assert "too short for a NIfTI header" in reasons["truncated.nifti"]
    assert "voxel data cut short" in reasons["cut_data.nifti"]
    assert "corrupt image" in reasons["cut_gzip.nifti"]
    assert "not a NIfTI-1 or NIfTI-2 image" in reasons["not_nifti.nifti"]
    assert [s.nifti.name for s in part.series] == ["0002_good.nii"]
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["0002_good.json", "0002_good.nii"]


def test_invalid_json_is_reported_without_its_content(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    _small_pair(converted, visit, "broken")
    text = (visit / "broken.json").read_text()
    (visit / "broken.json").write_text(text[: text.index(XA30_ID) + len(XA30_ID)])
    _small_pair(converted, visit, "listed")
    (visit / "listed.json").write_text("[1, 2]")
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    reasons = _reasons(part)
    assert set(reasons) == {"broken.nifti", "listed.nifti"}
    assert reasons["broken.nifti"].startswith("invalid JSON sidecar")
    assert "not a JSON object" in reasons["listed.nifti"]
    assert part.series == () and part.patient_ids == frozenset()


def test_json_with_a_byte_order_mark_is_staged_without_it(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    _small_pair(converted, visit, "bom")
    original = (visit / "bom.json").read_bytes()
    (visit / "bom.json").write_bytes(b"\xef\xbb\xbf" + original)
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    [series] = part.series
    assert series.sidecar.read_bytes() == original  # dcm2bids reads the staged JSON without "utf-8-sig"
    assert part.patient_ids == frozenset({XA30_ID})


@pytest.mark.parametrize("make", ["nifti2", "nifti2-gzipped", "nifti1-big-endian"])
def test_nifti2_and_big_endian_images_are_staged_unchanged(make, converted, tmp_path):
    reference = nib.load(converted["xa30"] / "5_anat-T1w_acq-tfl.nii")
    data = np.asanyarray(reference.dataobj)
    if make.startswith("nifti2"):
        image = nib.Nifti2Image(data, reference.affine)
    else:
        image = nib.Nifti1Image(data, reference.affine, header=nib.Nifti1Header(endianness=">"))
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    made = tmp_path / ("made.nii.gz" if make.endswith("gzipped") else "made.nii")
    image.to_filename(made)
    shutil.copyfile(made, visit / "t1.nifti")
    shutil.copyfile(converted["xa30"] / "5_anat-T1w_acq-tfl.json", visit / "t1.json")
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    assert part.problems == ()
    [series] = part.series
    staged = nib.load(series.nifti)
    assert type(staged) is (nib.Nifti2Image if make.startswith("nifti2") else nib.Nifti1Image)
    if make == "nifti1-big-endian":
        assert staged.header.endianness == ">"
    assert np.array_equal(np.asanyarray(staged.dataobj), data)
    assert np.array_equal(staged.affine, reference.affine)


def test_other_files_are_counted_not_reported(converted, tmp_path):
    export = tmp_path / "export"
    visit = _visit_dir(export, "V1")
    _small_pair(converted, visit, "good")
    (visit / "notes.txt").write_text("nothing")
    (visit / "report.pdf").write_bytes(b"%PDF-1.4")
    (visit / "sub").mkdir()
    shutil.copyfile(next(p for p in sorted(XA30.rglob("*")) if p.is_file() and p.name != "LICENSE"),
                    visit / "sub" / "IM0001")
    part = stage_nifti_files(_visit(export, "V1"), tmp_path / "staging")
    assert part.ignored_files == 3
    assert part.problems == () and len(part.series) == 1
