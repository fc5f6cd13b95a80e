"""Bad configuration: a clear error naming what is wrong, before any check is reported.

Through ``dag.test()`` for what the run reads (the Variable, the connections, the
buckets, ``local_root``); the ``local_root`` permission check also runs as an
unprivileged user, since root reads any folder.
"""

from __future__ import annotations

import os
import pwd

import pytest

from devtools.runs import DagRunOutcome, load_dag
from devtools.seed import seed_backup
from include.backup_integrity.config.settings import ConfigError, Settings
from include.backup_integrity.stores.preflight import check_bucket, check_local_root, preflight
from tests.support.catalog import alerts, query
from tests.support.connections import set_variable

CASES = {
    "not JSON": ('{"local_root": "/tmp", ', "is not valid JSON"),
    "unknown key": ({"lookback_day": 3}, "unknown key(s) ['lookback_day']"),
    "wrong type": ({"lookback_days": "7"}, "key 'lookback_days': expected an integer"),
    "backup_r2 missing": ("AIRFLOW_CONN_BACKUP_R2", "Airflow connection 'backup_r2'"),
    "backup_b2 missing": ("AIRFLOW_CONN_BACKUP_B2", "Airflow connection 'backup_b2'"),
    "backup_catalog missing": ("AIRFLOW_CONN_BACKUP_CATALOG", "Airflow connection 'backup_catalog'"),
    "bucket does not exist": (
        {"b2_bucket": "no-such-bucket"},
        "bucket 'no-such-bucket' does not exist on b2",
    ),
    "local_root does not exist": (
        {"local_root": "/nonexistent/backups"},
        "'/nonexistent/backups' does not exist",
    ),
    "local_root is a file": ({"local_root": __file__}, f"{__file__!r} is not a folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_fails_before_any_check_naming_what_is_wrong(
    case, stores, airflow_env, airflow_db, monkeypatch, capfd, webhook
):
    seed_backup(stores)
    change, expected = CASES[case]
    if isinstance(change, str) and change.startswith("AIRFLOW_CONN_"):
        monkeypatch.delenv(change)
    elif isinstance(change, str):
        set_variable(monkeypatch, change)
    else:
        set_variable(monkeypatch, {**airflow_env, **change})
    dag = load_dag()
    dag.get_task("select_backups").retries = 2  # configuration errors are not retried

    outcome = DagRunOutcome(dag.test())

    assert outcome.state == "failed"
    assert outcome.statistics is None, "nothing was checked or reported"
    select = next(t for t in outcome.dag_run.get_task_instances() if t.task_id == "select_backups")
    assert str(select.state) == "failed"
    assert select.try_number == 1
    output = capfd.readouterr()
    assert expected in output.out + output.err
    assert alerts(stores) == []
    assert query(stores, "SELECT metadata FROM backups_backup") == [{"metadata": {"seeded": True}}]
    crash = [m for m in webhook.messages if "crashed" in m["title"]]
    assert len(crash) == 1, "the failure callback tells someone"


def test_preflight_checks_only_the_backends_in_use(tmp_path, airflow_env):
    settings = Settings(local_root=str(tmp_path / "absent"), r2_bucket="no-such-bucket")
    preflight(settings, ["b2"])  # neither local nor r2 is used: nothing to complain about
    with pytest.raises(ConfigError, match="does not exist on r2"):
        preflight(settings, ["r2", "b2"])
    with pytest.raises(ConfigError, match="local_root"):
        preflight(settings, ["local"])


def test_an_unreachable_store_is_not_a_configuration_error(monkeypatch, airflow_env):
    from devtools.services import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_R2",
        '{"conn_type": "aws", "login": "k", "password": "s", "extra": {"endpoint_url": '
        f'"http://127.0.0.1:{free_port()}", "region_name": "us-east-1", '
        '"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}}',
    )
    warning = check_bucket("r2", "securesyntax")
    assert warning is not None
    assert "checking anyway" in warning


def test_an_unreadable_local_root_is_named(tmp_path):
    root = tmp_path / "locked"
    root.mkdir()
    root.chmod(0o000)
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="is not readable"):
            check_local_root(str(root))
        return
    # Root reads every folder: check in a forked child that dropped to an unprivileged
    # user, as a worker runs.
    nobody = pwd.getpwnam("nobody")
    for parent in tmp_path.parents:  # every folder above is traversable, as on a real disk
        if parent != parent.parent:
            parent.chmod(parent.stat().st_mode | 0o001)
    tmp_path.chmod(0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        status = 0
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            check_local_root(str(root))
        except ConfigError as error:
            os.write(write_end, str(error).encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert f"folder {str(root)!r} is not readable by this worker (uid {nobody.pw_uid})" in message
