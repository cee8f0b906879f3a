"""Group commit under kill -9: 50 threads write and wait; every write that
was reported durable must be in the database after the crash."""
import os
import random
import signal
import sqlite3
import subprocess
import time

from conftest import BUILD_DIR, SAN_ENV


def test_every_durable_write_survives_kill9(tmp_path):
    tool = os.path.join(BUILD_DIR, "tests", "crash", "store_crash")
    data = tmp_path / "data"
    data.mkdir()
    out_path = tmp_path / "acked.txt"
    for round_ in range(3):
        with open(out_path, "wb") as out:
            env = dict(os.environ)
            env.update(SAN_ENV)
            p = subprocess.Popen([tool, str(data), "50", "r%d-" % round_], stdout=out,
                                 stderr=subprocess.DEVNULL, env=env)
            time.sleep(0.8 + random.random())
            p.send_signal(signal.SIGKILL)
            p.wait()
        acked = set(open(out_path).read().split())
        assert len(acked) > 100, "too few writes to be meaningful: %d" % len(acked)
        db = sqlite3.connect(str(data / "lucy.db"))  # recovers the WAL like a restart
        keys = set(k for (k,) in db.execute("SELECT key FROM meta"))
        db.close()
        missing = acked - keys
        assert not missing, "acknowledged but lost after kill -9: %s" % sorted(missing)[:10]
