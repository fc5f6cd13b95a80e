"""The Variable's ``restore_drill`` and ``wal_segment_bytes`` keys, and the drill DAG's params."""

from __future__ import annotations

import json

import pytest

from include.backup_integrity.config.drill_settings import (
    DEFAULT_FORMATS,
    DrillSettings,
    drill_params_of_run,
    drill_settings_of,
    resolve_drill_options,
)
from include.backup_integrity.config.settings import ConfigError, Settings, parse_settings
from include.backup_integrity.domain.drills import DEFAULT_PG_DUMP_CHECK


def drill_of(restore_drill, **top) -> DrillSettings:
    settings = parse_settings(json.dumps({"restore_drill": restore_drill, **top}))
    drill = drill_settings_of(settings.restore_drill)
    assert drill is not None
    return drill


def test_without_the_key_drills_are_not_configured_and_wal_segments_are_16_mib():
    settings = parse_settings("{}")

    assert settings.restore_drill is None
    assert drill_settings_of(settings.restore_drill) is None
    assert settings.wal_segment_bytes == 16777216
    assert settings == Settings()
    assert parse_settings({"restore_drill": None}).restore_drill is None, "null: not configured"


def test_an_empty_object_gives_every_default():
    drill = drill_of({})

    assert drill.decrypt_command is None
    assert drill.formats == {
        "FULL_DATABASE": "pg_dump",
        "TENANT_BACKUP": "pg_dump",
        "CONFIGURATION": "tar",
        "WAL_ARCHIVE": "wal",
    }
    assert drill.per_type == 1
    assert drill.checks == {
        "FULL_DATABASE": [DEFAULT_PG_DUMP_CHECK],
        "TENANT_BACKUP": [DEFAULT_PG_DUMP_CHECK],
    }
    assert drill.timeout_minutes == 60
    assert drill.max_bytes == 53687091200
    assert drill.work_dir is None
    assert drill.max_age_days == 8
    assert drill.drilled_types() == ["CONFIGURATION", "FULL_DATABASE", "TENANT_BACKUP", "WAL_ARCHIVE"]


def test_every_key_is_read():
    drill = drill_of(
        {
            "decrypt_command": [
                "openssl",
                "enc",
                "-d",
                "-aes-256-cbc",
                "-pbkdf2",
                "-pass",
                "env:BACKUP_PASSPHRASE",
            ],
            "per_type": 3,
            "timeout_minutes": 15,
            "max_bytes": 1000,
            "work_dir": "/var/tmp/drills",
            "max_age_days": 2.5,
        },
        wal_segment_bytes=64 * 1024 * 1024,
    )

    assert drill.decrypt_command[0] == "openssl"
    assert (drill.per_type, drill.timeout_minutes, drill.max_bytes) == (3, 15, 1000)
    assert (drill.work_dir, drill.max_age_days) == ("/var/tmp/drills", 2.5)
    assert parse_settings({"wal_segment_bytes": 1024 * 1024}).wal_segment_bytes == 1048576


def test_formats_merge_over_the_defaults_entry_by_entry_and_null_removes_one():
    drill = drill_of({"formats": {"WAL_ARCHIVE": None, "CONFIGURATION": "none", "AUDIT_DUMP": "pg_dump"}})

    assert drill.formats == {
        "FULL_DATABASE": "pg_dump",
        "TENANT_BACKUP": "pg_dump",
        "CONFIGURATION": "none",
        "AUDIT_DUMP": "pg_dump",
    }
    assert drill.format_of("WAL_ARCHIVE") == "none"
    assert drill.drilled_types() == ["AUDIT_DUMP", "FULL_DATABASE", "TENANT_BACKUP"]
    assert drill.checks_for("AUDIT_DUMP") == [DEFAULT_PG_DUMP_CHECK], (
        "every pg_dump type gets the default check"
    )
    assert DEFAULT_FORMATS["WAL_ARCHIVE"] == "wal", "the defaults themselves are untouched"


def test_checks_merge_over_the_defaults_and_null_removes_the_default():
    drill = drill_of(
        {"checks": {"TENANT_BACKUP": ["SELECT count(*) > 0 FROM tenants"], "FULL_DATABASE": None}}
    )

    assert drill.checks_for("TENANT_BACKUP") == ["SELECT count(*) > 0 FROM tenants"]
    assert drill.checks_for("FULL_DATABASE") == []
    assert drill_of({"checks": {"FULL_DATABASE": []}}).checks_for("FULL_DATABASE") == []


@pytest.mark.parametrize(
    ("restore_drill", "names"),
    [
        ("yes", "'restore_drill': expected a JSON object"),
        ({"decrypt_cmd": ["x"]}, "unknown key(s) ['decrypt_cmd']"),
        ({"decrypt_command": "openssl enc -d"}, "'restore_drill.decrypt_command'"),
        ({"decrypt_command": []}, "'restore_drill.decrypt_command'"),
        ({"formats": {"FULL_DATABASE": "mysqldump"}}, "type 'FULL_DATABASE' has format 'mysqldump'"),
        ({"formats": ["pg_dump"]}, "'restore_drill.formats': expected an object"),
        ({"checks": {"FULL_DATABASE": "SELECT true"}}, "must map to a list of SQL queries"),
        ({"checks": {"CONFIGURATION": ["SELECT true"]}}, "apply to pg_dump types only"),
        ({"per_type": 0}, "'restore_drill.per_type': expected an integer >= 1"),
        ({"per_type": "2"}, "'restore_drill.per_type'"),
        ({"timeout_minutes": 0}, "'restore_drill.timeout_minutes': expected a number > 0"),
        ({"timeout_minutes": 706}, "'restore_drill.timeout_minutes': at most 705"),
        ({"max_bytes": True}, "'restore_drill.max_bytes'"),
        ({"work_dir": "relative/dir"}, "'restore_drill.work_dir': expected null or an absolute path"),
        ({"max_age_days": -1}, "'restore_drill.max_age_days'"),
    ],
)
def test_bad_values_fail_naming_the_key(restore_drill, names):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"restore_drill": restore_drill})

    assert "Variable 'backup_integrity'" in str(caught.value)
    assert names in str(caught.value)


@pytest.mark.parametrize("value", [0, 1000, 3 * 1024 * 1024, 2 * 1024 * 1024 * 1024, "16777216", None])
def test_wal_segment_bytes_must_be_a_size_postgresql_allows(value):
    with pytest.raises(ConfigError, match="'wal_segment_bytes': expected a power of two"):
        parse_settings({"wal_segment_bytes": value})


def test_the_validated_settings_travel_as_plain_json():
    settings = parse_settings({"restore_drill": {"per_type": 2}})

    again = Settings(**json.loads(json.dumps(settings.to_dict())))

    assert drill_settings_of(again.restore_drill) == drill_settings_of(settings.restore_drill)


def test_params_default_to_the_declared_ones_and_per_type_overrides_the_variable():
    drill = drill_of({"per_type": 2})

    assert drill_params_of_run(None) == {"backup_ids": [], "per_type": None}
    assert resolve_drill_options(drill, drill_params_of_run({})).per_type == 2
    options = resolve_drill_options(drill, drill_params_of_run({"per_type": 5, "backup_ids": [" a ", ""]}))
    assert (options.per_type, options.backup_ids) == (5, ["a"])
    with pytest.raises(ConfigError, match="trigger param 'per_type'"):
        resolve_drill_options(drill, {"per_type": 0})
    with pytest.raises(ConfigError, match="trigger param 'backup_ids'"):
        resolve_drill_options(drill, {"backup_ids": [1]})
