"""A throwaway PostgreSQL cluster for the gateway tests, from Debian's packages (apt-get install postgresql).

`initdb` in a temp dir, the server on a free 127.0.0.1 port with its unix socket in the same temp dir, as an
unprivileged user when the tests run as root (PostgreSQL refuses to run as root). Each test gets a fresh
database in the session's cluster. Without PostgreSQL the tests that need it skip with the reason, except
under CI (`CI=true`), where a missing PostgreSQL is a failure: CI installs it (scripts/setup.sh).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from comfydesk.gateway.testing import RunningGateway

__all__ = ["DATABASES", "PostgresCluster", "find_pg_bin", "running_gateway", "start_postgres"]

_counter = itertools.count(1)


def find_pg_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` with initdb, or PG_BIN from the environment."""
    given = os.environ.get("PG_BIN")
    if given and (Path(given) / "initdb").is_file():
        return Path(given)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresCluster:
    bin_dir: Path
    root: Path
    port: int
    user: str
    _proc: subprocess.Popen[bytes]

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) over TCP on 127.0.0.1."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t{os.getpid()}_{next(_counter)}"
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def stop(self) -> None:
        if self._proc.poll() is None:
            # SIGQUIT: immediate shutdown. Nothing in a throwaway cluster is worth a checkpoint.
            self._proc.send_signal(signal.SIGQUIT)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresCluster:
    """initdb + postgres in a new temp dir; raises RuntimeError (with PostgreSQL's words) on failure."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    root = Path(tempfile.mkdtemp(prefix="comfydesk-pg-"))
    user = pwd.getpwuid(os.getuid()).pw_name
    # PostgreSQL will not run as root: then the cluster (its files, its socket) belongs to `nobody`, and
    # initdb and postgres drop to it in the child (the process we signal is postgres itself).
    as_user: dict[str, Any] = {}
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = nobody.pw_name
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_user:
        shutil.chown(root, user)
        shutil.chown(sock, user)
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(root)}
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        env=env,
        cwd=root,
        **as_user,
    )
    port = _free_port()
    options = [
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"port={port}",
        "-c", f"unix_socket_directories={sock}",
        "-c", "fsync=off",  # throwaway: durability costs time and buys nothing here
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=300",
        "-c", "shared_buffers=64MB",
    ]  # fmt: skip
    log = open(root / "postgres.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), *options],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
        **as_user,
    )
    log.close()
    cluster = PostgresCluster(bin_dir, root, port, user, proc)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            text = (root / "postgres.log").read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"postgres exited {proc.returncode}: {text[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", user],
                capture_output=True,
            )
            if ready.returncode == 0:
                return cluster
        if time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError("postgres did not accept connections within 30 s")
        time.sleep(0.05)  # polling interval of a condition wait: the server coming up


def postgres_or_skip() -> Iterator[PostgresCluster]:
    """Body of the session fixture: a cluster, or a skip with the reason (a failure under CI=true)."""
    try:
        cluster = start_postgres()
    except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace") if isinstance(exc, subprocess.CalledProcessError) else ""
        reason = f"PostgreSQL tests need a local PostgreSQL (apt-get install postgresql): {exc} {detail}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.stop()


#: How the parametrised gateway fixtures name the two databases.
DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster (skips, or fails under CI=true, without PostgreSQL)."""
    yield from postgres_or_skip()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (the gateway's SQLite file) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


def running_gateway(tmp_path: Path, database_url: str | None, **options: Any) -> Iterator[RunningGateway]:
    """Body of a `gateway` fixture: the conftest's gateway, on the database `database_url` names."""
    from comfydesk.gateway.testing import start_gateway

    running = start_gateway(data_dir=tmp_path / "gateway", database_url=database_url, **options)
    try:
        yield running
    finally:
        running.stop()
