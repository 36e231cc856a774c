"""Field maps of one visit: which image of an acquisition dcm2niix split is which BIDS field-map file."""

from __future__ import annotations

from pathlib import Path

from bids_factory.model import Series
from bids_factory.plan.fieldmaps import (gre_fieldmap_kind, is_field_map_in_units, magnitude_of_fieldmap,
                                         pepolar_pairs, phase_echoes)
from bids_factory.plan.series_facts import SeriesFacts

GRID = ((64, 64, 1), "affine")


def _facts(name="fmap", nifti=None, volumes=1, phase=False, has_bvec=False, grid=GRID, **data):
    series = Series(Path(nifti) if nifti else None, None, (), 1, name, name, tuple(data.get("ImageType", ())), ())
    return SeriesFacts(series, {"ProtocolName": name, **data}, name, set(), volumes, None, has_bvec, phase, None, grid)


def _kinds(facts, kind):
    return {id(f): (kind, "seen", None) for f in facts}


def test_a_map_in_hz_is_known_by_its_name_or_units_and_its_magnitude_is_not_one():
    assert is_field_map_in_units(_facts(nifti="s/b0_fieldmaphz.nii"))
    assert is_field_map_in_units(_facts(Units="Hz"))
    assert is_field_map_in_units(_facts(ImageType=["ORIGINAL", "PRIMARY", "B0 MAP"]))
    # older dcm2niix writes the map's words on the magnitude beside it too: the magnitude is no map
    assert not is_field_map_in_units(_facts(ImageType=["ORIGINAL", "PRIMARY", "M", "B0 MAP"]))
    assert not is_field_map_in_units(_facts(ImageType=["ORIGINAL", "PRIMARY", "M", "ND"]))


def test_gre_images_are_magnitudes_and_phases_by_echo_and_echo_times():
    assert gre_fieldmap_kind(_facts(EchoNumber=1)) == "fmap/magnitude1"
    assert gre_fieldmap_kind(_facts(EchoNumber=2)) == "fmap/magnitude2"
    assert gre_fieldmap_kind(_facts()) == "fmap/magnitude"
    assert gre_fieldmap_kind(_facts(phase=True, EchoNumber=2, EchoTime1=0.00492, EchoTime2=0.00738)) == "fmap/phasediff"
    assert gre_fieldmap_kind(_facts(phase=True, EchoNumber=1)) == "fmap/phase1"
    assert gre_fieldmap_kind(_facts(phase=True)) == "fmap/phasediff"  # no echo times: held back later


def test_two_phase_echoes_of_one_acquisition_are_phase1_and_phase2_not_two_phasediffs():
    pair = [_facts("gre_field_mapping", phase=True, EchoNumber=n, EchoTime1=0.004, EchoTime2=0.006) for n in (1, 2)]
    other = _facts("other_fieldmap", phase=True, EchoNumber=2, EchoTime1=0.004, EchoTime2=0.006)
    kinds = _kinds([*pair, other], "fmap/phasediff")
    phase_echoes([*pair, other], kinds)
    assert [kinds[id(f)][0] for f in (*pair, other)] == ["fmap/phase1", "fmap/phase2", "fmap/phasediff"]
    assert "one of two phase echoes" in kinds[id(pair[0])][1]


def test_the_magnitude_beside_a_map_in_hz_is_its_magnitude_only_in_its_own_acquisition():
    b0, magnitude = _facts("B0map", Units="Hz"), _facts("B0map", EchoNumber=1)
    elsewhere = _facts("gre_field_mapping", EchoNumber=1)
    kinds = {id(b0): ("fmap/fieldmap", "", None), id(magnitude): ("fmap/magnitude1", "", None),
             id(elsewhere): ("fmap/magnitude1", "", None)}
    magnitude_of_fieldmap([b0, magnitude, elsewhere], kinds)
    assert kinds[id(magnitude)][0] == "fmap/magnitude" and kinds[id(elsewhere)][0] == "fmap/magnitude1"


def _epi(name, direction, **kw):
    return _facts(name, PhaseEncodingDirection=direction, ScanningSequence="EP", SequenceName="epfid2d1_64", **kw)


def test_short_epi_images_of_opposite_polarity_on_one_grid_are_a_pepolar_pair():
    ap, pa = _epi("FM_AP", "j-"), _epi("FM_PA", "j")
    kinds = _kinds([ap, pa], "unknown")
    pepolar_pairs([ap, pa], kinds)
    assert kinds[id(ap)][0] == kinds[id(pa)][0] == "fmap/epi"


def test_what_is_not_a_pair_stays_as_it_was():
    cases = [
        [_epi("A", "j-"), _epi("B", "j-")],  # one polarity only
        [_epi("A", "j-"), _epi("B", "j", grid=((96, 96, 1), "other"))],  # not one grid
        [_epi("A", "j-", volumes=200), _epi("B", "j", volumes=200)],  # time series, not field maps
        [_epi("A", "j-", has_bvec=True), _epi("B", "j", has_bvec=True)],  # diffusion b0 pairs
        [_epi("A", "j-"), _epi("B", "i")],  # other axis
        [_facts("A", PhaseEncodingDirection="j-"), _facts("B", PhaseEncodingDirection="j")],  # not EPI
    ]
    for facts in cases:
        kinds = _kinds(facts, "unknown")
        pepolar_pairs(facts, kinds)
        assert {kinds[id(f)][0] for f in facts} == {"unknown"}, facts[0].data
    placed = [_epi("A", "j-"), _epi("B", "j")]
    kinds = _kinds(placed, "dwi/dwi")  # classified as something else already: left alone
    pepolar_pairs(placed, kinds)
    assert {k[0] for k in kinds.values()} == {"dwi/dwi"}
