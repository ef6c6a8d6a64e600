"""Progress: plain log lines when not on a terminal."""

import logging

from galcnn.progress import progress_reporter


def test_plain_lines_report_counts_and_rate(caplog):
    with caplog.at_level(logging.INFO, logger="galcnn"):
        logging.getLogger("galcnn").propagate = True
        with progress_reporter(5, "predict", unit="cutouts", interval=0, terminal=False) as advance:
            for _ in range(5):
                advance(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("predict: 1/5 cutouts (")
    assert lines[-1].startswith("predict: 5/5 cutouts in ") and "cutouts/s" in lines[-1]
