"""Progress: a bar on a terminal, plain log lines in CI, containers and pipes."""

import io
import logging

from bids_factory.run.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="bids_factory")
    screen = _Terminal()
    progress = Progress(2, "visits", stream=screen)
    progress.step("V1: ok")
    progress.step("V2: ok")
    progress.close()
    assert "\r[###############...............] 1/2 visits V1: ok" in screen.getvalue()
    assert screen.getvalue().endswith("\n") and not caplog.records


def test_plain_lines_elsewhere(caplog):
    caplog.set_level(logging.INFO, logger="bids_factory")
    pipe = io.StringIO()
    progress = Progress(2, "visits", stream=pipe)
    progress.step("V1: ok")
    progress.close()
    assert pipe.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["visits 1/2: V1: ok"]


def test_phases_are_named_lines_elsewhere_and_one_line_on_a_terminal(caplog):
    from bids_factory.run.progress import Phases

    caplog.set_level(logging.INFO, logger="bids_factory")
    phases = Phases(stream=io.StringIO())
    phases.start("EHR")
    phases.start("validator", "bids-validator-deno")
    phases.close()
    assert [r.getMessage() for r in caplog.records] == ["EHR...", "validator: bids-validator-deno"]
    assert set(phases.durations) == {"EHR", "validator"}
    caplog.clear()
    screen = _Terminal()
    phases = Phases(stream=screen)
    phases.start("report")
    phases.close()
    assert "\rreport..." in screen.getvalue() and not caplog.records
