"""A throwaway OpenSSH server on a free loopback port, for tests of the remote GT scripts.

``start_sshd(tmp_path)`` generates fresh host and user keys, writes an sshd config that lets
only the current user log in with the generated key, starts ``sshd -D -e`` and waits until it
answers. Callers skip when ``sshd_unavailable()`` returns a reason.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.proc_helpers import free_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")


def find_sshd() -> str | None:
    found = shutil.which("sshd")
    if found:
        return os.path.abspath(found)
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def sshd_unavailable() -> str | None:
    """A reason to skip, or None when a real sshd can run here."""
    if find_sshd() is None:
        return "sshd (openssh-server) is not installed"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen (openssh-client) is not installed"
    privsep = Path("/run/sshd")
    if not privsep.is_dir():
        try:
            privsep.mkdir(mode=0o755, parents=True)
        except OSError:
            return "sshd needs /run/sshd (privilege separation directory) and it cannot be created"
    return None




def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL)
    return path


@dataclass
class Sshd:
    port: int
    user: str
    host_key: Path
    user_key: Path
    proc: subprocess.Popen
    log: Path

    def host_key_line(self) -> str:
        """The known_hosts line for this server (``[127.0.0.1]:PORT type base64``)."""
        kind, blob = Path(str(self.host_key) + ".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(root: Path) -> Sshd:
    root.mkdir(parents=True, exist_ok=True)
    host_key = keygen(root / "host_ed25519")
    user_key = keygen(root / "user_ed25519")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(str(user_key) + ".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    user = getpass.getuser()
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {root / 'sshd.pid'}",
        f"AllowUsers {user}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel ERROR",
    ]) + "\n")
    log = root / "sshd.log"
    proc = subprocess.Popen([find_sshd(), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))
    server = Sshd(port, user, host_key, user_key, proc, log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not answer on port {port}: {log.read_text()}")
