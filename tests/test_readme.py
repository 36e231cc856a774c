"""The README's two opening commands are the ones CI and users run."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
