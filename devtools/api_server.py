"""The Airflow API server (with this repository's plugins) as a real process on a free loopback port.

Used by the dashboard's browser test and for looking at the dashboard by hand. It
uses Airflow's simple auth manager with one known user, so that logging in is
real and an unauthenticated request is really refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from devtools.runs import release_metadata_db
from devtools.services import free_port, wait_for_port


@dataclass
class AirflowApiServer:
    """``airflow api-server`` on 127.0.0.1; ``env`` is the environment it runs with."""

    env: dict[str, str]
    username: str = "ops"
    password: str = field(default_factory=lambda: os.urandom(9).hex())
    #: More users of the simple auth manager, by name: their role (``viewer``, ``user``, ``op``, ...).
    roles: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: str = field(default_factory=lambda: tempfile.mktemp(prefix="bi-api-server-", suffix=".log"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> AirflowApiServer:
        home = self.env["AIRFLOW_HOME"]
        passwords = os.path.join(home, "simple_auth_passwords.json")
        for name in self.roles:
            self.passwords.setdefault(name, os.urandom(9).hex())
        self.passwords[self.username] = self.password
        with open(passwords, "w") as handle:
            json.dump(self.passwords, handle)
        users = ",".join(f"{name}:{role}" for name, role in {self.username: "admin", **self.roles}.items())
        env = dict(self.env)
        env.update(
            AIRFLOW__CORE__AUTH_MANAGER=(
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=users,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=passwords,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
        )
        env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(16).hex())
        # Shared by every worker: the console's CSRF tokens are HMACs under it.
        env.setdefault("AIRFLOW__API__SECRET_KEY", os.urandom(16).hex())
        release_metadata_db()  # the server writes the same metadata DB
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
            self._wait_healthy(timeout)
        except Exception:
            self.stop()
            raise RuntimeError(f"the API server did not start; log:\n{self.log()[-4000:]}") from None
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError("API server not healthy")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def token(self, username: str | None = None) -> str:
        """A JWT for a known user (the first by default), from the auth manager's real login endpoint."""
        username = username or self.username
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": username, "password": self.passwords[username]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        headers: dict[str, Any] = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        cookie_token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST JSON as a script would (``token``: Bearer) or as a browser would (``cookie_token``)."""
        sent: dict[str, str] = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if cookie_token:
            sent["Cookie"] = f"_token={cookie_token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_as_browser(self, path: str, cookie_token: str) -> tuple[int, bytes]:
        """GET with the session cookie, as the browser sends it."""
        request = urllib.request.Request(f"{self.url}{path}", headers={"Cookie": f"_token={cookie_token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # Its own session: the uvicorn workers it forked go with it.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
