"""A child process for the prediction log tests: appends predictions from several threads.

    python _prediction_writer.py URL PREFIX THREADS COUNT RECORD

Each thread appends one prediction per call, ``COUNT`` times (0: until killed), with ids
``PREFIX-<thread>-<n>``; once an ``append`` has returned, the id is written to the file ``RECORD`` (one
``write`` to a file opened for appending: it is in the operating system's hands at once, so it survives
a SIGKILL of this process just as a committed prediction must). The test then checks that every
recorded id is in the log.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from datetime import UTC, datetime

from tidal.core.entities import Prediction
from tidal.storage import open_prediction_log


def main(url: str, prefix: str, threads: int, count: int, record: str) -> None:
    log = open_prediction_log(url)
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in itertools.count() if count == 0 else range(count):
                pid = f"{prefix}-{t}-{n}"
                log.append([Prediction(id=pid, time=datetime.now(UTC), model="child", version=1,
                                       inputs={"t": t, "n": n, "x": n / 7}, output=n % 2, proba=[0.5, 0.5])])
                os.write(fd, f"{pid}\n".encode())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
