"""Signals become a stop request in the process that asked, and stay signals in its workers."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from galcnn.interrupt import Interrupted, exit_code_for, signal_name, stop_on_signals


def test_first_signal_requests_a_stop_the_second_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    heard = []
    with stop_on_signals(heard.append) as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and heard == [signal.SIGTERM]
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
        assert caught.value.signum == signal.SIGTERM and caught.value.saved == ""
    assert signal.getsignal(signal.SIGTERM) is before
    assert (signal_name(signal.SIGINT), signal_name(signal.SIGTERM)) == ("Ctrl-C", "SIGTERM")
    assert (exit_code_for(signal.SIGINT), exit_code_for(signal.SIGTERM)) == (130, 143)


def _signal_self(signum):
    os.kill(os.getpid(), signum)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_worker_leaves_ctrl_c_to_its_parent_and_dies_on_sigterm():
    context = multiprocessing.get_context("fork")
    with stop_on_signals() as stop:
        codes = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            worker = context.Process(target=_signal_self, args=(signum,))
            worker.start()
            worker.join(10)
            codes[signum] = worker.exitcode
        assert not stop  # the parent was not asked to stop
    assert codes == {signal.SIGINT: 0, signal.SIGTERM: -signal.SIGTERM}
