"""Small helpers the tests share: tiny FITS files written with astropy, paths, tiny runs."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from astropy.io import fits

from galcnn.data.reader import read_batch as _read_batch  # before a test replaces it

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_DATA = os.environ.get("GALCNN_SHARED_DATA",
                             os.path.join(HERE, "..", "..", "shared", "data"))
SAMPLE_DATA = os.path.join(HERE, "..", "sample_data")


def write_fits(path, data=None, *, header=None, hdus=None) -> str:
    """Write a primary-HDU image (or a given HDU list) and return the path as str."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if hdus is None:
        hdus = [fits.PrimaryHDU(data, header=header)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def manifest_rows(prepared) -> list[dict]:
    """A prepared dataset's manifest, as text."""
    return csv_rows(os.path.join(prepared, "manifest.csv"))


def metadata(prepared) -> dict:
    with open(os.path.join(prepared, "metadata.json")) as handle:
        return json.load(handle)


def noise_image(shape=(32, 32), seed=0, bands=None) -> np.ndarray:
    """Unit Gaussian noise with a bright 4x4 square in the middle."""
    rng = np.random.default_rng(seed)
    full = shape if bands is None else (bands, *shape)
    image = rng.normal(0.0, 1.0, full).astype(np.float32)
    image[..., shape[0] // 2 - 2:shape[0] // 2 + 2, shape[1] // 2 - 2:shape[1] // 2 + 2] += 20
    return image


def dying_read_batch(tasks, **options):
    """A reading worker's batch function that kills its own process (SIGKILL, as the
    out-of-memory killer does) when it reads task ``$DIE_AT``: every time, or only until the
    file ``$DIE_ONCE`` exists. Importable by name, so a process pool can be handed it."""
    import signal

    marker = os.environ.get("DIE_ONCE")
    if any(t.index == int(os.environ["DIE_AT"]) for t in tasks) and \
            not (marker and os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return _read_batch(tasks, **options)


def tiny(**changes):
    """Training options that run in about a second on the 120 simulated cutouts at 32 px."""
    from galcnn.stages.train import TrainOptions

    return TrainOptions(**{"width": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 0.5,
                           **changes})


class Terminal:
    """A command run under a pseudo-terminal, its output rendered as a terminal would show it
    (cursor moves, erased lines, colours) with ``pyte``: what a person watching sees."""

    def __init__(self, args: list[str], *, columns: int = 100, rows: int = 40, env=None):
        import fcntl
        import pty
        import struct
        import subprocess
        import sys
        import termios

        import pyte

        self.screen = pyte.HistoryScreen(columns, rows, history=2000)
        self.stream = pyte.ByteStream(self.screen)
        self.master, replica = pty.openpty()
        fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns),
                       "LINES": str(rows), **(env or {})}
        self.process = subprocess.Popen([sys.executable, "-m", "galcnn", *args], stdin=replica,
                                        stdout=replica, stderr=replica, env=environment,
                                        start_new_session=True)
        os.close(replica)

    def read(self, timeout: float = 0.1) -> bool:
        """Feed what the command wrote in ``timeout`` s to the screen; False once it closed."""
        import select

        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return self.process.poll() is None
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the command exited and closed the terminal
            return False
        self.stream.feed(data)
        return bool(data)

    def wait_for(self, text: str, timeout: float = 120.0) -> bool:
        """Read until ``text`` is on screen (True) or the command ends or time runs out."""
        import time

        end = time.monotonic() + timeout
        while text not in "\n".join(self.lines()):
            if time.monotonic() > end or not self.read():
                return text in "\n".join(self.lines())
        return True

    def finish(self, timeout: float = 300.0) -> int:
        import time

        end = time.monotonic() + timeout
        while self.read() and time.monotonic() < end:
            pass
        while self.read(0.05):
            pass
        os.close(self.master)
        return self.process.wait(timeout=10)

    def lines(self) -> list[str]:
        """Every line shown, scrolled-off ones first, right-stripped, without blank tails."""
        columns = self.screen.columns
        history = ["".join(line[x].data for x in range(columns)).rstrip()
                   for line in self.screen.history.top]
        lines = history + [line.rstrip() for line in self.screen.display]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def text(self) -> str:
        """Everything shown as one string, unstripped lines joined, so that text wrapped at
        the terminal's edge reads whole (a space that fell on the edge is kept)."""
        columns = self.screen.columns
        history = ["".join(line[x].data for x in range(columns))
                   for line in self.screen.history.top]
        return "".join(history + list(self.screen.display))


def gzip_bomb(path, side: int) -> str:
    """A gzipped FITS file of a ``side`` x ``side`` float32 image of zeros: kilobytes on disk,
    ``4 side**2`` bytes decoded."""
    import gzip

    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": side,
                          "NAXIS2": side})
    block = np.zeros(1 << 20, np.uint8).tobytes()
    size = 4 * side * side
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(header.tostring().encode("ascii"))
        for start in range(0, size, len(block)):
            handle.write(block[:min(len(block), size - start)])
        handle.write(b"\0" * (-size % 2880))
    return str(path)


def tile_bomb(path, side: int = 40000) -> str:
    """A tile-compressed FITS file of a few KB whose header declares a ``side`` x ``side``
    image in one tile of that size (decoding it allocates the whole tile)."""
    small = str(path) + ".small"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((16, 16), np.float32),
                                                       compression_type="RICE_1")]
                 ).writeto(small, overwrite=True)
    with fits.open(small, disable_image_compression=True) as hdul:
        table = hdul[1]
        for key in ("ZNAXIS1", "ZNAXIS2", "ZTILE1", "ZTILE2"):
            table.header[key] = side
        hdul.writeto(str(path), overwrite=True)
    os.remove(small)
    return str(path)


def with_bad_card(path, card: bytes, data=None) -> str:
    """A FITS image whose header holds one malformed card (``CRPIX1  = 1.2.3``, ``bad key =
    'x'``, an unterminated quote), written byte for byte as astropy would refuse to."""
    image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32) \
        if data is None else data
    write_fits(path, image)
    raw = bytearray(open(path, "rb").read())
    end = raw.find(b"END" + b" " * 77)
    raw[end:end + 160] = card.ljust(80) + b"END".ljust(80)
    open(path, "wb").write(bytes(raw))
    return str(path)


def fitsverify(path) -> str | None:
    """fitsverify's verdict line on a file, or None where the tool is not installed."""
    import shutil
    import subprocess

    if shutil.which("fitsverify") is None:
        return None
    done = subprocess.run(["fitsverify", "-q", str(path)], capture_output=True, text=True)
    return done.stdout.strip() + done.stderr.strip()
