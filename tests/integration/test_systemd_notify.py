"""systemd integration without systemd: a fake NOTIFY_SOCKET receives
READY=1 once lucy listens and WATCHDOG=1 pings at half of WATCHDOG_USEC,
then STOPPING=1 on SIGTERM."""
import os
import socket
import time

from test_idle_libraries import DLSHIM, has, needs_dlshim


def test_ready_and_watchdog_pings(start_lucy, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        lucy = start_lucy(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        messages = []
        deadline = time.time() + 5
        while time.time() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            messages.append(sock.recv(4096).decode())
        assert "READY=1" in messages[0], messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 3, messages
        assert lucy.stop() == 0
        rest = []
        sock.settimeout(1)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("STOPPING=1" in m for m in rest), rest
    finally:
        sock.close()


def test_no_watchdog_pings_without_watchdog(start_lucy, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.5)
    try:
        lucy = start_lucy(env={"NOTIFY_SOCKET": path})
        first = sock.recv(4096).decode()
        assert "READY=1" in first
        assert has(lucy.proc.pid, "libsystemd.so.0")  # opened only under systemd
        try:
            extra = sock.recv(4096).decode()
        except socket.timeout:
            extra = ""
        assert "WATCHDOG=1" not in extra
    finally:
        sock.close()


def test_a_notify_socket_lucy_cannot_send_to_is_logged(start_lucy, tmp_path):
    """NOTIFY_SOCKET left over or wrong: lucy runs and says so (a
    Type=notify unit would otherwise time out with nothing in the log)."""
    path = str(tmp_path / "nobody-listens.sock")
    lucy = start_lucy(env={"NOTIFY_SOCKET": path})
    assert lucy.get("/health").status_code == 200
    line = lucy.wait_for(lambda: [l for l in lucy.log_lines()
                                  if l.get("msg", "").startswith("systemd cannot be told")],
                         what="the notify warning")[0]
    assert line["level"] == "warning" and line["notify_socket"] == path, line
    assert "unset it" in line["msg"], line


@needs_dlshim
def test_libsystemd_missing_under_systemd_is_logged(start_lucy, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        lucy = start_lucy(env={"NOTIFY_SOCKET": path, "LD_PRELOAD": DLSHIM,
                               "LUCY_DLSHIM_MISSING": "libsystemd.so.0"})
        assert lucy.get("/health").status_code == 200
        line = lucy.wait_for(lambda: [l for l in lucy.log_lines()
                                      if "install Debian's libsystemd0" in l.get("msg", "")],
                             what="the libsystemd warning")[0]
        assert "cannot open shared object file" in line["error"], line
    finally:
        sock.close()
