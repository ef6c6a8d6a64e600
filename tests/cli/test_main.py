"""The same mistake gets the same one-line message and exit status in every command."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner

from galcnn.cli import cli
from galcnn.cli.main import EXIT_FATAL, EXIT_USAGE

from helpers import SAMPLE_DATA, csv_rows

SIMULATED = os.path.join(SAMPLE_DATA, "simulated")
FIELD = os.path.join(SAMPLE_DATA, "field.fits.fz")


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result) -> str:
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _commands(model: str, unet: str, out: str) -> dict[str, list[str]]:
    return {
        "prepare": ["prepare", SIMULATED, "-o", out],
        "train": ["train", "--data", SIMULATED, "--out", out, "--epochs", "1"],
        "predict": ["predict", model, SIMULATED, "-o", os.path.join(out, "p.csv")],
        "segment": ["segment", unet, FIELD, "-o", out],
    }


def test_a_bad_hdu_is_a_usage_error_everywhere(classifier, unet, tmp_path):
    messages = set()
    for name, args in _commands(classifier, unet, str(tmp_path / "out")).items():
        result = _invoke(args + ["--hdu", "-1"])
        assert result.exit_code == EXIT_USAGE, (name, result.output)
        messages.add(_one_line_error(result))
    assert messages == {"Error: Invalid value for '--hdu': HDU number must be >= 0, got -1"}


def test_an_output_under_a_file_is_named_in_one_line_everywhere(classifier, unet, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    commands = _commands(classifier, unet, str(blocker / "sub"))
    commands["evaluate"] = ["evaluate", classifier, SIMULATED, "--json",
                            str(blocker / "sub" / "m.json")]
    for name, args in commands.items():
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, (name, result.output)
        assert _one_line_error(result) == f"Error: {blocker}: is a file, not a directory", name


def test_an_unwritable_place_is_named(classifier, tmp_path):
    result = _invoke(["predict", classifier, SIMULATED, "-o", "/proc/galcnn/p.csv"])
    assert result.exit_code == EXIT_FATAL
    assert _one_line_error(result) == "Error: /proc/galcnn: No such file or directory"
    for command in (["predict", classifier, SIMULATED, "-o", "/proc/p.csv"],
                    ["prepare", SIMULATED, "-o", "/proc/prepared"]):
        result = _invoke(command)  # the output is named, not its lock file /proc/.p.csv.lock
        assert result.exit_code == EXIT_FATAL
        assert _one_line_error(result) == (f"Error: {command[-1]}: cannot write there (No "
                                           "such file or directory)")


def test_a_file_that_is_not_a_model_is_refused_alike(tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("weights")
    expected = (f"Error: {fake}: not a galcnn checkpoint (not a file written by torch.save, "
                "or a damaged one)")
    for args in (["predict", fake, SIMULATED, "-o", tmp_path / "p.csv"],
                 ["evaluate", fake, SIMULATED],
                 ["segment", fake, FIELD, "-o", tmp_path / "seg"],
                 ["train", "--data", SIMULATED, "--out", tmp_path / "run", "--init-from", fake,
                  "--size", "16", "--epochs", "1"]):
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, result.output
        assert _one_line_error(result) == expected


@pytest.mark.parametrize("command", ["predict", "evaluate", "segment"])
def test_a_missing_model_is_a_usage_error(command, tmp_path):
    args = [command, tmp_path / "missing.pt", SIMULATED]
    args += [] if command == "evaluate" else ["-o", tmp_path / "o"]
    result = _invoke(args)
    assert result.exit_code == EXIT_USAGE and "does not exist" in result.output


def test_help_names_every_command_and_the_exit_codes():
    result = _invoke(["--help"])
    assert result.exit_code == 0
    for name in ("prepare", "train", "evaluate", "predict", "segment"):
        assert name in result.output
    assert "3 finished but some inputs failed" in " ".join(result.output.split())


@pytest.mark.parametrize("option", ["-v", "--verbose", "-q"])
def test_a_global_option_after_the_command_is_explained(option, tmp_path):
    result = _invoke(["train", "--data", SIMULATED, "--out", tmp_path / "run", option])
    assert result.exit_code == EXIT_USAGE
    assert _one_line_error(result) == (f"Error: {option} is a global option: it goes before the "
                                       f"command, as in 'galcnn {option} train ...'")


def test_every_option_of_every_command_says_what_it_does():
    from galcnn.cli import cli

    for name, command in cli.commands.items():
        for parameter in command.params:
            if isinstance(parameter, click.Option) and parameter.name != "help":
                assert parameter.help and len(parameter.help) > 12, (name, parameter.name)


@pytest.mark.parametrize("mistake,what", [("cutoutz", "no such file or directory"),
                                          ("@files.txt", "no such file or directory"),
                                          ("*.fitz", "matches no file")])
def test_an_input_that_names_nothing_is_a_usage_error_everywhere(classifier, unet, tmp_path,
                                                                 mistake, what):
    item = str(tmp_path / mistake) if not mistake.startswith("@") else f"@{tmp_path}/files.txt"
    for args in (["prepare", item, "-o", tmp_path / "p"],
                 ["predict", classifier, item, "-o", tmp_path / "p.csv"],
                 ["segment", unet, item, "-o", tmp_path / "s"]):
        result = _invoke(args)
        assert result.exit_code == EXIT_USAGE, result.output
        assert _one_line_error(result) == f"Error: Invalid value for 'INPUTS...': {item}: {what}"
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("raised, code, name", [(KeyboardInterrupt, 130, "Ctrl-C"),
                                                ("sigterm", 143, "SIGTERM")])
def test_a_signal_ends_any_command_with_its_exit_status_and_one_line(raised, code, name):
    import signal

    from galcnn.interrupt import Interrupted

    @click.command("stops")
    def stops():
        raise KeyboardInterrupt if raised is KeyboardInterrupt else \
            Interrupted(signal.SIGTERM)

    cli.add_command(stops)
    try:
        result = CliRunner().invoke(cli, ["stops"])
    finally:
        del cli.commands["stops"]
    assert result.exit_code == code and "Traceback" not in result.output
    assert result.output.strip() == (f"galcnn stops: stopped by {name}; outputs that were "
                                     "complete are kept, none is half-written")


HOLD = """
import sys, time
from galcnn.data.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """Hold the lock of an output the way a running galcnn would; yields (path, pid)."""
    holders = []

    def hold(path):
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        holders.append(holder)
        return holder.pid

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_a_second_writer_of_any_output_is_refused_with_one_line(classifier, unet, cutouts,
                                                                 simulated, tmp_path, held):
    out = tmp_path / "predictions.csv"
    commands = {
        "predict": (out, ["predict", classifier, str(cutouts), "-o", str(out)]),
        "train": (tmp_path / "run", ["train", "--data", simulated, "--out",
                                     str(tmp_path / "run"), "--epochs", "1"]),
        "prepare": (tmp_path / "prep", ["prepare", str(cutouts), "-o", str(tmp_path / "prep")]),
        "segment": (tmp_path / "seg", ["segment", unet,
                                       os.path.join(SAMPLE_DATA, "field.fits.fz"), "--hdu",
                                       "SCI", "-o", str(tmp_path / "seg")]),
    }
    for name, (path, args) in commands.items():
        pid = held(path)
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines == [f"Error: {path} is being written by another galcnn process (pid {pid}); "
                         "wait for it to finish or write to another output"], (name, lines)
        assert not os.path.exists(path) or name == "train" and os.listdir(path) == []


@pytest.mark.slow
def test_a_full_disk_names_the_output_in_one_line_in_every_command(classifier, unet, cutouts,
                                                                   simulated, full_disk):
    commands = {
        "predict": (full_disk / "p.csv", ["predict", classifier, str(cutouts), "-o",
                                          str(full_disk / "p.csv")]),
        "train": (full_disk / "run", ["train", "--data", simulated, "--out",
                                      str(full_disk / "run"), "--epochs", "1"]),
        "prepare": (full_disk / "prep", ["prepare", str(cutouts), "-o",
                                         str(full_disk / "prep")]),
        "segment": (full_disk / "seg", ["segment", unet, FIELD, "--hdu", "SCI", "-o",
                                        str(full_disk / "seg")]),
    }
    for name, (path, args) in commands.items():
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, (name, result.output)
        line = _one_line_error(result)
        assert line.startswith(f"Error: no space left on device writing {path}"), (name, line)
    assert sorted(os.listdir(full_disk)) == [".filler"]  # nothing half-written left


GPU_FULL = ("CUDA out of memory. Tried to allocate 9.00 GiB. GPU 0 has a total capacity of "
            "139.81 GiB of which 1.20 GiB is free. Including non-PyTorch memory, this process "
            "has 138.61 GiB memory in use. Of the allocated memory 120.52 GiB is allocated by "
            "PyTorch, and 16.08 GiB is reserved by PyTorch but unallocated. If reserved but "
            "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments")


def _run_out_of_memory(*args, **kwargs):
    import torch

    raise torch.cuda.OutOfMemoryError(GPU_FULL)  # torch.OutOfMemoryError from 2.5


@pytest.mark.slow
def test_a_gpu_out_of_memory_is_one_line_in_every_command(classifier, unet, tmp_path,
                                                           monkeypatch):
    """The error is raised by a stand-in for the network's forward pass (no GPU here): every
    command stops with one line that says what to make smaller; segment stops the whole run
    instead of failing each remaining file with the same long line."""
    import galcnn.inference as inference
    from galcnn.models import GroupPooled

    monkeypatch.setattr(GroupPooled, "forward", _run_out_of_memory)
    monkeypatch.setattr(GroupPooled, "per_element", _run_out_of_memory)
    monkeypatch.setattr(GroupPooled, "embed", _run_out_of_memory)
    monkeypatch.setattr(inference.Predictor, "pixel_probabilities", _run_out_of_memory)
    memory = ("the GPU ran out of memory (it asked for 9.00 GiB more; 1.20 GiB of 139.81 GiB "
              "was free): use a smaller")
    out = tmp_path / "out"
    commands = {
        "predict": (["predict", classifier, SIMULATED, "-o", out / "p.csv", "--batch-size",
                     "300"], "--batch-size (now 300)"),
        "embed": (["embed", classifier, SIMULATED, "-o", out / "e.fits"], "--batch-size"),
        "evaluate": (["evaluate", classifier, SIMULATED], "--batch-size"),
        "explain": (["explain", classifier, SIMULATED, "-o", out / "x"],
                    "--batch-size (now 16)"),
        "segment": (["segment", unet, FIELD, FIELD, "-o", out / "seg"],
                    "--tile (now 512) or --batch-size"),
        "train": (["train", "--data", SIMULATED, "--out", out / "run", "--size", "16",
                   "--epochs", "1", "--batch-size", "32"], "--batch-size (now 32)"),
    }
    for name, (args, hint) in commands.items():
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, (name, result.output)
        assert _one_line_error(result) == f"Error: {memory} {hint}", name
    assert not os.path.exists(out / "seg" / "field.seg.fits")


def test_a_cuda_fault_stops_segment_at_once(unet, tmp_path, monkeypatch):
    import galcnn.inference as inference

    calls = []

    def fault(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel "
                           "errors might be asynchronously reported at some other API call")

    monkeypatch.setattr(inference.Predictor, "pixel_probabilities", fault)
    result = _invoke(["segment", unet, FIELD, FIELD, FIELD, "-o", tmp_path / "seg"])
    assert result.exit_code == EXIT_FATAL and len(calls) == 1
    assert _one_line_error(result).startswith(
        "Error: the GPU failed (CUDA error: an illegal memory access was encountered CUDA "
        "kernel errors might be asynchronously reported at some other API call); this process "
        "cannot use it again")


def test_help_and_usage_errors_come_before_torch_is_imported():
    """train --help took 2 s (the architecture list imported the networks, and torch):
    every command's --help, and a usage error, now come without importing torch."""
    code = ("import sys\nfrom galcnn.cli import cli\nfor args in ({}):\n"
            "    try:\n        cli(args)\n    except SystemExit:\n        pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    calls = [["train", "--help"], ["predict", "--help"], ["segment", "--help"],
             ["train", "--data", SIMULATED, "--out", "x", "--arch", "resnett"],
             ["predict", "nothing.pt", SIMULATED, "-o", "p.csv"]]
    done = subprocess.run([sys.executable, "-c", code.format(repr(calls)[1:-1] + ",")],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("no torch"), done.stdout + done.stderr
    assert "Invalid value for '--arch': 'resnett' is not one of 'auto', 'resnet'" in done.stderr


def test_train_help_lists_the_common_options_first_in_sections():
    help_text = _invoke(["train", "--help"]).output
    titles = [line for line in help_text.splitlines() if line and not line[0].isspace()]
    assert titles[1:] == ["Run:", "Network and optimisation:", "Hardware:",
                          "Raw cutouts in --data (prepared into RUN/prepared; as in galcnn "
                          "prepare):", "Other options:"]
    run = help_text[help_text.index("Run:"):help_text.index("Network and optimisation:")]
    assert "--epochs" in run and "--resume" in run and "--stretch" not in run


def test_galcnn_names_its_own_architectures_as_registered():
    from galcnn.choices import ARCHITECTURES
    from galcnn.models import list_models

    assert tuple(list_models()) == ARCHITECTURES


@pytest.mark.slow
def test_text_from_inputs_is_printed_as_text_never_as_markup_or_control_codes(tmp_path):
    """A class named '[/]' crashed prepare and train with a MarkupError after they finished;
    '-o results[v2]/pred.csv' printed 'mk/results/pred.csv'; '[bold]x' printed bold; an ESC
    in a class or file name cleared the screen."""
    import shutil

    raw = tmp_path / "raw"
    names = {"elliptical": "[/]", "edge_on": "[bold]x", "spiral_cw": "esc\x1b[2Jb"}
    rows = ["file,label"]
    for folder, label in names.items():
        for path in sorted(os.listdir(os.path.join(SIMULATED, folder)))[:10]:
            shutil.copy(os.path.join(SIMULATED, folder, path), raw / path
                        if raw.exists() else (raw.mkdir() or raw / path))
            rows.append(f"{path},\"{label}\"")
    (raw / "labels.csv").write_text("\n".join(rows) + "\n")
    (raw / "bad\x1b[2J.fits").write_bytes(b"")
    prepared, run = tmp_path / "prep", tmp_path / "run"
    outputs = [_invoke(["prepare", raw, "-o", prepared, "--size", "32"]),
               _invoke(["train", "--data", prepared, "--out", run, "--epochs", "1", "--width",
                        "8", "--batch-size", "16"])]
    weird = tmp_path / "out[/]" / "res[v2]"
    outputs += [
        _invoke(["predict", run, raw, "-o", weird / "pred[v2].csv"]),
        _invoke(["embed", run, raw, "-o", weird / "emb[bold].fits"]),
        _invoke(["explain", run, raw / "bad\x1b[2J.fits", SIMULATED + "/elliptical",
                 "-o", weird / "expl[/]", "--no-png"]),
    ]
    outputs.append(_invoke(["similar", weird / "emb[bold].fits", "elliptical_000", "-k", "2",
                            "-o", weird / "near[/].csv", "--no-mosaic"]))
    for result in outputs:
        assert result.exit_code in (0, 3), result.output
        assert "\x1b" not in result.output and "Traceback" not in result.output
    text = "".join(result.output for result in outputs)
    assert "[bold]x" in text and "esc\\x1b[2Jb" in text  # the class table shows them as text
    assert "bad\\x1b[2J.fits: empty file (0 bytes)" in text
    assert str(weird / "pred[v2].csv") in outputs[2].output
    assert str(weird / "emb[bold].fits") in outputs[3].output
    assert str(weird / "near[/].csv") in outputs[5].output


def test_a_segment_run_prints_odd_paths_as_text(unet, tmp_path):
    import shutil

    field = tmp_path / "fi\x1b[2Jeld[bold].fits.fz"
    shutil.copy(FIELD, field)
    result = _invoke(["segment", unet, field, "--hdu", "SCI", "-o", tmp_path / "seg[bold]"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and str(tmp_path / "seg[bold]") in result.output


@pytest.mark.parametrize("damage", ["shard", "manifest-row", "manifest-rows", "metadata",
                                    "pickle"])
def test_a_damaged_prepared_set_is_named_in_one_line(classifier, simulated, tmp_path, damage):
    """A cut shard gave 'mmap length is greater than file size' (a traceback, in training);
    a cut manifest a TypeError traceback; a cut metadata.json 'Expecting value: line 14'
    without the file; a pickled shard a traceback. Each is one line now, naming the file."""
    import json
    import shutil

    import numpy as np

    copy = tmp_path / "prepared"
    shutil.copytree(simulated, copy)
    shard = copy / json.load(open(copy / "metadata.json"))["shards"][0]["file"]
    manifest, metadata = copy / "manifest.csv", copy / "metadata.json"
    if damage == "shard":
        shard.write_bytes(shard.read_bytes()[:-5000])
        named, problem = shard, "cut short: "
    elif damage == "manifest-row":
        text = manifest.read_text()
        manifest.write_text(text[: len(text) - 40])
        named, problem = manifest, "is cut short or has extra fields"
    elif damage == "manifest-rows":
        manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-3]))
        named, problem = manifest, "holds 117 rows, metadata.json says 120"
    elif damage == "metadata":
        metadata.write_text(metadata.read_text()[:300])
        named, problem = metadata, "damaged JSON ("
    else:
        np.save(shard, np.array([{"x": 1}] * 200, dtype=object), allow_pickle=True)
        named, problem = shard, "holds Python objects (pickles), never loaded"
    for args in (["train", "--data", copy, "--out", tmp_path / "run", "--epochs", "1"],
                 ["evaluate", classifier, copy]):
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, (args[0], result.output)
        line = _one_line_error(result)
        assert line.startswith(f"Error: {named}: ") and problem in line, (args[0], line)
        assert line.endswith("prepare the set again (galcnn prepare ... --overwrite)")


@pytest.mark.slow
def test_a_disk_filling_up_is_said_plainly_in_every_command(classifier, unet, cutouts,
                                                            simulated, nearly_full_disk):
    """With some space left, writes are cut short part-way: prepare said '786432 requested
    and 260064 written', explain 'Not enough space on disk: requested 32768...', segment
    logged its first victim as a failed file, train full before epoch 1 said 'the last
    complete checkpoint is kept ... --resume' with no run directory left."""
    disk = nearly_full_disk
    commands = {
        "prepare": (disk / "prep", ["prepare", str(cutouts), "-o", str(disk / "prep"),
                                    "--augment", "rot90", "--copies", "3"],
                    "nothing was written; an existing output is unchanged"),
        "explain": (disk / "expl", ["explain", classifier, str(cutouts), "-o",
                                    str(disk / "expl"), "--no-png"],
                    "nothing was written; an existing output is unchanged"),
        "segment": (disk / "seg", ["segment", unet, FIELD, FIELD, "--hdu", "SCI", "-o",
                                   str(disk / "seg")],
                    "complete outputs are kept; free space, then run again to go on"),
        "train": (disk / "run", ["train", "--data", simulated, "--out", str(disk / "run"),
                                 "--epochs", "1", "--width", "64"],
                  "nothing was kept; free space, then run the command again"),
    }
    for name, (path, args, kept) in commands.items():
        result = _invoke(args)
        assert result.exit_code == EXIT_FATAL, (name, result.output)
        assert _one_line_error(result) == \
            f"Error: no space left on device writing {path}; {kept}", name
    assert not os.path.exists(disk / "run")
    rows = csv_rows(disk / "seg" / "segment.csv") if (disk / "seg" / "segment.csv").exists() \
        else []
    assert not any("space" in r["status"] for r in rows)  # no failure row to outlive a rerun


BAD_CARDS = {"crpix": b"CRPIX1  = 1.2.3", "badkey": b"bad key = 'x'", "quote": b"OBJECT  = 'abc"}


@pytest.mark.slow
def test_one_malformed_header_card_costs_that_card_only(unet, classifier, tmp_path):
    """A cutout with one malformed card gave explain a VerifyError traceback, exit 1 and no
    output for the good inputs; segment failed it with 'unreadable FITS (VerifyError: )' or
    copied the card into a .seg.fits that failed fitsverify. The card is left out now."""
    from helpers import fitsverify, with_bad_card

    folder = tmp_path / "odd"
    for name, card in BAD_CARDS.items():
        with_bad_card(folder / f"{name}.fits", card, np.random.default_rng(0).normal(
            size=(32, 32)).astype(np.float32))
    result = _invoke(["segment", unet, folder, "-o", tmp_path / "seg", "--no-tta"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "VerifyWarning" not in result.output
    result = _invoke(["explain", classifier, folder, SIMULATED + "/elliptical", "-o",
                      tmp_path / "expl", "--no-png"])
    assert result.exit_code == 0, result.output
    assert "Explained 33 cutouts" in result.output and "Traceback" not in result.output
    for name in BAD_CARDS:
        for output in (tmp_path / "seg" / f"{name}.seg.fits", tmp_path / "expl" / f"{name}.fits"):
            verdict = fitsverify(output)
            assert verdict is None or verdict.startswith("verification OK"), verdict


def test_an_empty_verify_message_still_says_what_is_wrong(tmp_path):
    from astropy.io.fits.verify import VerifyError

    from galcnn.data.fitsio import _describe_exception
    from helpers import write_fits

    path = write_fits(tmp_path / "x.fits", np.zeros((4, 4), np.float32))
    error = VerifyError("\nVerification reported errors:\nHDU 0:\n    Card 8:\n        "
                        "Unfixable error: Illegal keyword name 'BAD KEY'\nNote: astropy.io.fits "
                        "uses zero-based indexing.\n")
    assert _describe_exception(error, path) == (
        "unreadable FITS (VerifyError: a header card it cannot repair: Illegal keyword name "
        "'BAD KEY')")
