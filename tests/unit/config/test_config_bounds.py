"""Configuration files a run reads are bounded and unambiguous: a key given twice, a nesting or an alias
expansion beyond any real file, a regular expression that is not one: refused up front, with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bids_factory.config.heuristic import load_heuristic
from bids_factory.config.read import MAX_DEPTH
from bids_factory.ehr.mapping import load_ehr_mapping
from bids_factory.errors import EhrMappingError, HeuristicError

RULE = '{"datatype": "anat", "suffix": "T1w", "criteria": {"SeriesDescription": "t1*"}}'


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_heuristic_with_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = _file(tmp_path, "site.json", '{\n  "descriptions": [' + RULE + '],\n  "descriptions": []\n}\n')
    with pytest.raises(HeuristicError) as refused:
        load_heuristic(path)
    assert str(refused.value) == (f'heuristic {path}: key "descriptions" given twice in one object (line 3): JSON '
                                  "keeps only the last one; merge the two into one key")


def test_the_same_key_in_two_objects_is_no_duplicate(tmp_path):
    rules = ", ".join([RULE, RULE.replace("T1w", "T2w")])
    assert len(load_heuristic(_file(tmp_path, "site.json", '{"descriptions": [' + rules + "]}")).descriptions) == 2


def test_invalid_regular_expression_is_refused_with_rule_line_and_fix(tmp_path):
    rule = json.loads(RULE) | {"criteria": {"SeriesDescription": "t1_(mprage"}}
    path = _file(tmp_path, "site.json", json.dumps({"search_method": "re", "descriptions": [rule]}, indent=2))
    with pytest.raises(HeuristicError) as refused:
        load_heuristic(path)
    message = str(refused.value)
    assert message.startswith(f"heuristic {path}: rule #0 anat/T1w: criteria SeriesDescription 't1_(mprage' "
                              "(line 8) is not a regular expression (missing ), unterminated subpattern")
    assert message.endswith("or use search_method fnmatch") and "\n" not in message
    # the same text under fnmatch (the default) is a glob: accepted
    rule["criteria"]["SeriesDescription"] = "t1_(mprage"
    load_heuristic(_file(tmp_path, "glob.json", json.dumps({"descriptions": [rule]})))


def test_heuristic_nested_beyond_any_real_one_is_refused(tmp_path):
    path = _file(tmp_path, "deep.json", '{"descriptions": []' + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(HeuristicError, match=f"nested deeper than {MAX_DEPTH} levels at line 1: not read"):
        load_heuristic(path)


def test_yaml_mapping_with_a_key_given_twice_is_refused(tmp_path):
    path = _file(tmp_path, "ehr.yaml", "tables:\n  a.csv: {}\ntables:\n  b.csv: {}\n")
    with pytest.raises(EhrMappingError, match=r"key 'tables' given twice in one mapping \(line 3\)"):
        load_ehr_mapping(path)


def test_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{name}: &{name} [{', '.join(['*' + before] * 9)}]" for before, name in zip("abcdefgh", "bcdefghi")]
    path = _file(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    with pytest.raises(EhrMappingError, match=r"more than 1000000 values once its aliases \(\*name\) are expanded"):
        load_ehr_mapping(path)


def test_yaml_alias_within_bounds_is_read(tmp_path):
    text = "columns: &shared {age: {}}\ntables:\n  a.csv: {columns: *shared}\n"
    with pytest.raises(EhrMappingError) as refused:  # the schema's own verdict, not the bound
        load_ehr_mapping(_file(tmp_path, "small.yaml", text))
    assert "expanded" not in str(refused.value) and "twice" not in str(refused.value)
