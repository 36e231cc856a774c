"""The README's two opening commands are the ones CI and users run."""

from conftest import REPO



def _opening_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_demo_and_test_commands():
    demo, tests = _opening_commands()
    assert demo.endswith("bids-factory demo /tmp/bids-factory-demo") and "pip install ." in demo
    assert tests.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = _opening_commands()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert tests in ci


def test_readme_ehr_mapping_example_is_a_valid_mapping(tmp_path):
    from bids_factory.ehr.tables import load_ehr_mapping

    text = (REPO / "README.md").read_text()
    example = text.split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "mapping.yaml").write_text(example)
    mapping = load_ehr_mapping(tmp_path / "mapping.yaml")
    assert set(mapping["tables"]) == {"demographics", "cognitive_scores"}


def test_readme_documents_every_convert_option():
    from bids_factory.cli.args import command_line as _parser

    text = (REPO / "README.md").read_text()
    convert = _parser()._subparsers._group_actions[0].choices["convert"]
    options = [o for action in convert._actions for o in action.option_strings if o.startswith("--")]
    assert [o for o in options if f"`{o}" not in text and o != "--help"] == []


def test_readme_daily_runs_promise_append_only_and_name_the_decision_command():
    from bids_factory.write.append_only import APPLY_OPTION

    text = (REPO / "README.md").read_text()
    daily = text.split("## Daily runs", 1)[1].split("\n## ", 1)[0]
    assert "append-only unless a person decides" in daily
    assert f"bids-factory convert EXPORT_DIR BIDS_DIR --heuristic site.json {APPLY_OPTION} V0001" in daily.replace(
        "\n   ", " ").replace("  ", " ")
    assert "code/bids-factory/replaced/" in daily
