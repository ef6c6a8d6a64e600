"""One writer per output."""

import os
import subprocess
import sys

import pytest

from galcnn.data.lock import OutputLocked, lock_path, output_lock

HOLD = """
import sys, time
from galcnn.data.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_writer_is_refused_and_the_lock_goes_with_its_holder(tmp_path):
    out = str(tmp_path / "predictions.csv")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, out], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=rf"{out} is being written by another galcnn "
                                               rf"process \(pid {holder.pid}\)"):
            with output_lock(out):
                pass
    finally:
        holder.kill()  # a killed holder releases the lock at once
        holder.wait()
    assert os.path.exists(lock_path(out))  # left behind by the kill, harmless
    with output_lock(out):
        assert open(lock_path(out)).read().strip() == str(os.getpid())
    assert not os.path.exists(lock_path(out))
    assert lock_path(str(tmp_path / "run") + "/") == str(tmp_path / ".run.lock")
