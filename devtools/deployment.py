"""A real Airflow deployment on loopback: PostgreSQL metadata DB, api-server, scheduler,
dag-processor, triggerer and, for CeleryExecutor, a Redis broker and Celery workers.

Each component is its own process started with this repository's ``dags/`` and
``plugins/`` folders and stopped by its own process id (each leads a process
group, so the task processes it forked go with it), also when a step fails:
use it as a context manager. The REST calls are the ones the UI makes,
authenticated as a UI user of the simple auth manager (a JWT from ``/auth/token``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.services import PostgresServer, free_port, wait_for_port

if TYPE_CHECKING:
    from datetime import datetime

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FINISHED = ("success", "failed")


@dataclass
class Component:
    """One long-running process of the deployment."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def _stop_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process and everything it forked (its process group, led by its pid)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group (task processes, pool workers)
    if process.poll() is None:
        process.wait(10)


def processes_in_group(pgid: int) -> list[int]:
    """Pids of live processes whose process group is ``pgid`` (zombies excluded)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.info["pid"]) == pgid:
                found.append(proc.info["pid"])
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return found


@dataclass
class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    base_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bi-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server was not found (Debian: apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.base_dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
        shutil.rmtree(self.base_dir, ignore_errors=True)


class AirflowDeployment:
    """Airflow's components as separate processes against a PostgreSQL metadata DB."""

    USER = "operator"

    def __init__(
        self,
        metadata: PostgresServer,
        *,
        executor: str = "LocalExecutor",
        connections: dict[str, dict[str, Any]] | None = None,
        variables: dict[str, Any] | None = None,
        redis: RedisServer | None = None,
        celery_workers: int = 2,
        settings: dict[str, str] | None = None,
        components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer"),
    ) -> None:
        self.metadata = metadata
        self.executor = executor
        self.home = Path(tempfile.mkdtemp(prefix="bi-airflow-e2e-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.dbname = f"airflow_{secrets.token_hex(4)}"
        self.redis = redis
        self.celery_workers = celery_workers if executor == "CeleryExecutor" else 0
        self.component_names = components
        self.components: list[Component] = []
        self._token: str | None = None
        self.env = self._environment(connections or {}, variables or {}, settings or {})

    # ------------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metadata_dsn(self) -> str:
        return self.metadata.dsn(self.dbname)

    def _environment(
        self, connections: dict[str, dict[str, Any]], variables: dict[str, Any], settings: dict[str, str]
    ) -> dict[str, str]:
        # Nothing of the calling process's Airflow or AWS configuration leaks in.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "AWS_", "_AIRFLOW")) and k != "PYTHONPATH"
        }
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.USER: self.password}))
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=str(REPO),
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR=self.executor,
            AIRFLOW__CORE__PARALLELISM="16",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{self.USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                f"postgresql+psycopg2://{self.metadata.user}@127.0.0.1:{self.metadata.port}/{self.dbname}"
            ),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
            AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL="3600",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        if self.executor == "CeleryExecutor":
            if self.redis is None:
                raise ValueError("CeleryExecutor needs a Redis broker: pass redis=RedisServer().start()")
            env.update(
                AIRFLOW__CELERY__BROKER_URL=self.redis.url,
                AIRFLOW__CELERY__RESULT_BACKEND=(
                    f"db+postgresql://{self.metadata.user}@127.0.0.1:{self.metadata.port}/{self.dbname}"
                ),
                AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
                AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1",
            )
        for conn_id, conn in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        for key, value in variables.items():
            env[f"AIRFLOW_VAR_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        env.update(settings)
        return env

    # ------------------------------------------------------------------ lifecycle

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run one Airflow CLI command against this deployment."""
        result = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def start(self) -> AirflowDeployment:
        try:
            self.metadata.create_database(self.dbname)
            self.airflow("db", "migrate")
            for name in self.component_names:
                self._spawn(Component(name, [name]))
            for index in range(1, self.celery_workers + 1):
                worker = f"worker{index}"
                self._spawn(
                    Component(
                        f"celery-{worker}",
                        ["celery", "worker", "--celery-hostname", f"{worker}@%h", "--skip-serve-logs"],
                        # task_instance.hostname names the worker that ran the task.
                        env={
                            "BI_WORKER_NAME": worker,
                            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devtools.deployment.worker_name",
                        },
                    )
                )
            if "api-server" in self.component_names:
                self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, component: Component) -> None:
        component.log_path = self.home / f"{component.name}.log"
        log = open(component.log_path, "wb")  # noqa: SIM115 - the child owns it; closed after spawn
        try:
            component.process = subprocess.Popen(
                [str(BIN / "airflow"), *component.args],
                env={**self.env, **component.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, led by its pid
            )
        finally:
            log.close()
        self.components.append(component)

    def _wait_healthy(self, timeout: float = 180) -> None:
        import httpx

        api = next(c for c in self.components if c.name == "api-server")
        deadline = time.monotonic() + timeout
        wait_for_port(self.port, timeout=timeout, process=api.process)
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"the API server did not become healthy in {timeout}s\n{self.logs('api-server')}")

    def check_alive(self) -> None:
        for component in self.components:
            if component.process is not None and component.process.poll() is not None:
                code = component.process.returncode
                raise RuntimeError(f"{component.name} exited with {code}:\n{self.logs(component.name)}")

    def logs(self, name: str, tail: int = 4000) -> str:
        component = next((c for c in self.components if c.name == name), None)
        if component is None or component.log_path is None or not component.log_path.exists():
            return ""
        return component.log_path.read_text(errors="replace")[-tail:]

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.components if c.pid]

    def stop(self) -> None:
        """Stop every component by its pid (and its process group), in reverse order of start."""
        for component in reversed(self.components):
            if component.process is not None:
                _stop_group(component.process)

    def cleanup(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> AirflowDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST API, as the UI calls it

    def token(self) -> str:
        """A JWT for the UI user, from the simple auth manager's login endpoint."""
        import httpx

        if self._token is None:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": self.USER, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        import httpx

        response = httpx.request(
            method,
            f"{self.base_url}/api/v2/{path.lstrip('/')}",
            json=body,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
        )
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.api("GET", f"dags/{dag_id}", expect=(200, 404)).get("dag_id") == dag_id:
                return
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} was not parsed in {timeout}s\n{self.logs('dag-processor')}")

    def wait_for_next_run(self, dag_id: str, data_interval_end: datetime, timeout: float = 180) -> None:
        """Wait until the scheduler's next run of ``dag_id`` is the one ending at ``data_interval_end``.

        The DAG processor computes the next run when it parses the file; a parse
        from before an hour boundary still points at the previous hour.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            rows = self.query("SELECT next_dagrun_data_interval_end FROM dag WHERE dag_id = %s", [dag_id])
            seen = rows[0]["next_dagrun_data_interval_end"] if rows else None
            if seen == data_interval_end:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}'s next run ends at {seen}, not {data_interval_end}")
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run as the UI's trigger form does; returns its run_id."""
        run = self.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """The UI's "Clear Run": every task of the run runs again."""
        self.api("POST", f"dags/{dag_id}/dagRuns/{run_id}/clear", {"dry_run": False, "only_failed": False})

    # ------------------------------------------------------------------ metadata DB reads

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        import psycopg2
        import psycopg2.extras

        conn = psycopg2.connect(self.metadata_dsn)
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params or [])
                return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT run_id, state, run_type, logical_date, run_after, data_interval_start, "
            "data_interval_end, backfill_id, conf, clear_number, end_date FROM dag_run "
            "WHERE dag_id = %s ORDER BY run_after, run_id",
            [dag_id],
        )

    def wait_for_runs(
        self,
        dag_id: str,
        run_ids: list[str] | None = None,
        count: int | None = None,
        timeout: float = 300,
        poll: float = 2.0,
    ) -> list[dict[str, Any]]:
        """Wait until the named runs (or ``count`` runs) exist and have all finished.

        ``poll`` is how often to look: the benchmark, which times a run by it, looks often.
        """
        deadline = time.monotonic() + timeout
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.check_alive()
            runs = self.runs(dag_id)
            if run_ids is not None:
                runs = [r for r in runs if r["run_id"] in run_ids]
                ready = len(runs) == len(run_ids)
            else:
                ready = count is not None and len(runs) >= count
            if ready and all(r["state"] in FINISHED for r in runs):
                return runs
            time.sleep(poll)
        raise TimeoutError(
            f"runs of {dag_id} not finished in {timeout}s: "
            f"{[(r['run_id'], r['state']) for r in runs]}\n{self.logs('scheduler')}"
        )


def worker_name() -> str:
    """``[core] hostname_callable`` of the Celery workers: which worker ran a task."""
    return os.environ.get("BI_WORKER_NAME") or __import__("socket").getfqdn()
