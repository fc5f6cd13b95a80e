"""The ``backup_integrity`` Variable and the trigger params: defaults, validation, overrides."""

from __future__ import annotations

import json

import pytest

from include.backup_integrity.config.params import (
    PARAM_DEFAULTS,
    TRIGGER_PARAMS,
    RunOptions,
    params_of_run,
    resolve_run_options,
    trigger_params,
)
from include.backup_integrity.config.settings import (
    DEFAULT_EXPECTED_BACKENDS,
    ConfigError,
    Settings,
    parse_settings,
)

VARIABLE = "Variable 'backup_integrity'"


# ----------------------------------------------------------------------------- the Variable


@pytest.mark.parametrize("raw", [None, "", "   \n", "{}", {}])
def test_absent_or_empty_variable_gives_the_defaults(raw):
    settings = parse_settings(raw)

    assert settings == Settings()
    assert settings.local_root == "/var/backups/jewelry-shop"
    assert (settings.r2_bucket, settings.b2_bucket) == ("securesyntax", "securesyntax")
    assert (settings.lookback_days, settings.max_backups, settings.chunk_size) == (30, None, 50)
    assert (settings.backups_table, settings.alerts_table) == ("backups_backup", "backups_backupalert")
    assert settings.expected_backends == DEFAULT_EXPECTED_BACKENDS
    assert settings.expected_backends["WAL_ARCHIVE"] == ["r2", "b2"]


def test_every_key_is_read_from_json_text():
    raw = json.dumps(
        {
            "local_root": "/srv/backups",
            "r2_bucket": "r2-backups",
            "b2_bucket": "b2.backups",
            "lookback_days": 7,
            "max_backups": 100,
            "backups_table": "public.backups_backup",
            "alerts_table": "alerts",
            "expected_backends": {"FULL_DATABASE": ["local", "b2"]},
            "chunk_size": 10,
        }
    )

    settings = parse_settings(raw)

    assert settings == Settings(
        local_root="/srv/backups",
        r2_bucket="r2-backups",
        b2_bucket="b2.backups",
        lookback_days=7,
        max_backups=100,
        backups_table="public.backups_backup",
        alerts_table="alerts",
        expected_backends={"FULL_DATABASE": ["local", "b2"]},
        chunk_size=10,
    )
    assert settings.bucket_for("r2") == "r2-backups"
    assert settings.bucket_for("b2") == "b2.backups"


def test_max_backups_may_be_null():
    assert parse_settings('{"max_backups": null}').max_backups is None


def test_invalid_json_names_the_variable_and_the_place():
    with pytest.raises(ConfigError, match=rf"^{VARIABLE} is not valid JSON: .* at line 1 column \d+$"):
        parse_settings('{"lookback_days": 7,}')


@pytest.mark.parametrize(("raw", "kind"), [("[1, 2]", "list"), ('"text"', "str"), ("null", "NoneType")])
def test_variable_must_be_an_object(raw, kind):
    with pytest.raises(ConfigError, match=rf"{VARIABLE} must be a JSON object, got {kind}"):
        parse_settings(raw)


def test_unknown_keys_are_named_together():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"lookback_day": 7, "chunksize": 5, "chunk_size": "x"})
    assert str(caught.value).startswith(f"{VARIABLE} has unknown key(s) ['chunksize', 'lookback_day']")


def test_every_wrong_key_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"lookback_days": "30", "repair": "fix"})
    assert str(caught.value) == (
        f"{VARIABLE}, key 'lookback_days': expected an integer, got '30'; "
        f"{VARIABLE}, key 'repair': expected one of ['off', 'plan', 'apply'], got 'fix'"
    )


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("rehash_period_days", -1, "must be >= 0, got -1"),
        ("rehash_budget_bytes", "1GB", "expected an integer or null, got '1GB'"),
        ("max_chunks_per_backend", 0, "must be >= 1, got 0"),
        ("repair", True, "expected one of ['off', 'plan', 'apply'], got True"),
    ],
)
def test_other_keys_are_validated_too(key, value, says):
    with pytest.raises(ConfigError) as caught:
        parse_settings({key: value})

    assert str(caught.value) == f"{VARIABLE}, key {key!r}: {says}"


def test_settings_cross_xcom_as_plain_values_and_come_back_validated():
    settings = parse_settings({"lookback_days": 7, "expected_backends": {"WAL_ARCHIVE": ["r2"]}})
    data = json.loads(json.dumps(settings.to_dict()))

    assert Settings.from_dict(data) == settings
    with pytest.raises(ValueError, match="lookback_days"):
        Settings.from_dict({**data, "lookback_days": "7"})


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lookback_day'\]") as caught:
        parse_settings('{"lookback_day": 7}')
    assert VARIABLE in str(caught.value)
    assert "'lookback_days'" in str(caught.value)  # the known keys are listed


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("lookback_days", "30", "expected an integer, got '30'"),
        ("lookback_days", True, "expected an integer, got True"),
        ("lookback_days", 1.5, "expected an integer, got 1.5"),
        ("lookback_days", 0, "must be >= 1, got 0"),
        ("max_backups", "all", "expected an integer or null, got 'all'"),
        ("max_backups", 0, "must be >= 1, got 0"),
        ("chunk_size", -5, "must be >= 1, got -5"),
        ("chunk_size", None, "expected an integer, got None"),
        ("local_root", "", "expected a non-empty string, got ''"),
        ("local_root", 5, "expected a non-empty string, got 5"),
        ("r2_bucket", ["a"], "expected a non-empty string, got ['a']"),
        ("alerts_table", "  ", "expected a non-empty string, got '  '"),
    ],
)
def test_wrong_type_is_named_with_its_key(key, value, says):
    with pytest.raises(ConfigError) as caught:
        parse_settings({key: value})

    assert str(caught.value) == f"{VARIABLE}, key {key!r}: {says}"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([], "expected a JSON object mapping backup_type to a list of backends"),
        ({}, "expected a JSON object mapping backup_type to a list of backends"),
        ({"FULL_DATABASE": []}, "type 'FULL_DATABASE' must map to a non-empty list of backends"),
        ({"FULL_DATABASE": "local"}, "type 'FULL_DATABASE' must map to a non-empty list of backends"),
        ({"WAL_ARCHIVE": ["r2", "s3"]}, "type 'WAL_ARCHIVE' names unknown backend(s) ['s3']"),
    ],
)
def test_expected_backends_is_validated(value, says):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"expected_backends": value})

    assert str(caught.value).startswith(f"{VARIABLE}, key 'expected_backends': ")
    assert says in str(caught.value)


def test_expected_backends_drops_repeated_backends_in_order():
    settings = parse_settings({"expected_backends": {"CONFIGURATION": ["b2", "local", "b2"]}})

    assert settings.expected_backends == {"CONFIGURATION": ["b2", "local"]}


@pytest.mark.parametrize("bucket", ["abc", "backups-2026.eu", "a" * 63, "0bucket9"])
def test_valid_bucket_names_are_accepted(bucket):
    assert parse_settings({"r2_bucket": bucket}).r2_bucket == bucket


@pytest.mark.parametrize("bucket", ["ab", "a" * 64, "My-Bucket", "under_score", "-lead", "trail-", "s3://b"])
def test_invalid_bucket_name_is_named(bucket):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"b2_bucket": bucket})

    assert str(caught.value) == f"{VARIABLE}, key 'b2_bucket': {bucket!r} is not a valid bucket name"


@pytest.mark.parametrize("name", ["backups_backup", "_t", "public.backups_backup", "A1.b2"])
def test_valid_table_names_are_accepted(name):
    assert parse_settings({"backups_table": name}).backups_table == name


@pytest.mark.parametrize(
    "name", ["backups-backup", "1backups", "a.b.c", "backups; DROP TABLE x", "a" * 64, '"quoted"', "t."]
)
def test_invalid_table_name_is_named(name):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"alerts_table": name})

    assert str(caught.value) == (
        f"{VARIABLE}, key 'alerts_table': {name!r} is not a table name ([schema.]identifier)"
    )


# ----------------------------------------------------------------------------- trigger params


def test_every_trigger_param_is_declared_once_with_a_title_and_a_description():
    params = trigger_params()

    assert list(params) == list(TRIGGER_PARAMS)
    assert list(params) == ["mode", "lookback_days", "max_backups", "backup_ids", "repair"]
    for name, param in params.items():
        declared = TRIGGER_PARAMS[name]
        assert param.value == declared.default == PARAM_DEFAULTS[name]
        assert param.schema["title"] == declared.title
        assert param.description == declared.description
        assert declared.title
        assert len(declared.description) > 20
    assert params["mode"].schema["enum"] == ["rolling", "quick", "full"]
    assert params["repair"].schema["enum"] == [None, "off", "plan", "apply"]
    assert params["lookback_days"].schema == {
        "type": ["null", "integer"],
        "minimum": 1,
        "title": TRIGGER_PARAMS["lookback_days"].title,
    }


def test_each_dag_gets_its_own_param_defaults():
    first, second = trigger_params(), trigger_params()
    first["backup_ids"].value.append("leaked")
    assert second["backup_ids"].value == []
    assert PARAM_DEFAULTS["backup_ids"] == []


def test_a_runs_params_are_its_conf_over_the_declared_defaults():
    params = params_of_run({"mode": "full", "unknown": 1})
    assert params == {**PARAM_DEFAULTS, "mode": "full"}
    params["backup_ids"].append("x")
    assert PARAM_DEFAULTS["backup_ids"] == [], "a run's params never change the declaration"


SETTINGS = Settings(lookback_days=7, max_backups=20)


@pytest.mark.parametrize(
    "params",
    [None, {}, {"mode": None, "lookback_days": None, "max_backups": None, "backup_ids": None}],
)
def test_absent_or_null_params_fall_back_to_the_variable(params):
    assert resolve_run_options(SETTINGS, params) == RunOptions(
        mode="rolling", lookback_days=7, max_backups=20, backup_ids=[]
    )


def test_params_override_the_variable():
    options = resolve_run_options(SETTINGS, {"mode": "full", "lookback_days": 2, "max_backups": 5})

    assert options == RunOptions(mode="full", lookback_days=2, max_backups=5, backup_ids=[])


def test_unknown_mode_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"^trigger param 'mode': expected one of \['quick', 'rolling', 'full'\], got 'deep'$",
    ):
        resolve_run_options(SETTINGS, {"mode": "deep"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("lookback_days", 0), ("lookback_days", "3"), ("lookback_days", True), ("max_backups", -1)],
)
def test_bad_integer_param_is_named(name, value):
    with pytest.raises(ConfigError) as caught:
        resolve_run_options(SETTINGS, {name: value})

    assert str(caught.value) == f"trigger param {name!r}: expected null or an integer >= 1, got {value!r}"


@pytest.mark.parametrize(
    "backup_ids",
    [
        ["id-1", " id-2 ", "", "id-3"],
        "id-1, id-2,,id-3",
        "id-1\nid-2\n\nid-3\n",
    ],
)
def test_backup_ids_as_list_or_comma_separated_text(backup_ids):
    options = resolve_run_options(SETTINGS, {"backup_ids": backup_ids})

    assert options.backup_ids == ["id-1", "id-2", "id-3"]


@pytest.mark.parametrize("backup_ids", [[1, 2], {"id": "x"}, ["ok", None]])
def test_backup_ids_of_another_shape_are_refused(backup_ids):
    with pytest.raises(ConfigError, match=r"^trigger param 'backup_ids': expected a list of backup ids"):
        resolve_run_options(SETTINGS, {"backup_ids": backup_ids})


def test_stall_after_hours_defaults_to_two_and_accepts_positive_numbers():
    assert parse_settings(None).stall_after_hours == 2
    assert parse_settings({"stall_after_hours": 6}).stall_after_hours == 6
    assert parse_settings({"stall_after_hours": 1.5}).stall_after_hours == 1.5


@pytest.mark.parametrize("value", [0, -1, "2", None, True])
def test_stall_after_hours_must_be_a_positive_number(value):
    with pytest.raises(ConfigError, match=r"key 'stall_after_hours': expected a number of hours > 0"):
        parse_settings({"stall_after_hours": value})


def test_repair_key_and_param_are_validated_and_the_param_wins():
    assert parse_settings(None).repair == "off"
    settings = parse_settings('{"repair": "plan"}')
    assert resolve_run_options(settings, {}).repair == "plan"
    assert resolve_run_options(settings, {"repair": None}).repair == "plan"
    assert resolve_run_options(settings, {"repair": "apply"}).repair == "apply"
    assert resolve_run_options(settings, {"repair": "off"}).repair == "off"
    with pytest.raises(ConfigError, match=r"Variable 'backup_integrity', key 'repair'.*'fix'"):
        parse_settings('{"repair": "fix"}')
    with pytest.raises(ConfigError, match=r"trigger param 'repair'.*True"):
        resolve_run_options(Settings(), {"repair": True})


def test_notice_max_age_hours_defaults_to_three_days_and_accepts_positive_numbers():
    assert parse_settings(None).notice_max_age_hours == 72
    assert parse_settings({"notice_max_age_hours": 24}).notice_max_age_hours == 24
    assert parse_settings({"notice_max_age_hours": 0.5}).notice_max_age_hours == 0.5


@pytest.mark.parametrize("value", [0, -3, "72", None, False])
def test_notice_max_age_hours_must_be_a_positive_number(value):
    with pytest.raises(ConfigError, match=r"key 'notice_max_age_hours': expected a number of hours > 0"):
        parse_settings({"notice_max_age_hours": value})
