"""The Variable's ``stores`` key: named stores, their order, and the errors that name store and field."""

from __future__ import annotations

import pytest

from include.backup_integrity.config.settings import ConfigError, Settings, parse_settings
from include.backup_integrity.domain.planning import routes
from include.backup_integrity.domain.records import EVIDENCE_SIZE, MISSING, PASSED
from include.backup_integrity.domain.repair import plan_repairs
from include.backup_integrity.domain.stores import LOCAL, S3, StoreSpec
from tests.support.records import check_result

WHERE = "Variable 'backup_integrity', key 'stores'"

FOUR_STORES = {
    "local": {"type": "local", "root": "/srv/backups", "path_column": "local_path"},
    "r2": {"type": "s3", "conn_id": "backup_r2", "bucket": "r2-backups", "path_column": "r2_path"},
    "b2": {"type": "s3", "conn_id": "backup_b2", "bucket": "b2-backups", "path_column": "b2_path"},
    "wasabi": {
        "type": "s3",
        "conn_id": "backup_wasabi",
        "bucket": "third-copy",
        "path_column": "wasabi_path",
    },
}


def test_without_stores_the_three_stores_of_earlier_releases_are_built_from_their_keys():
    settings = parse_settings({"local_root": "/srv/b", "r2_bucket": "r2-backups", "b2_bucket": "b2.backups"})

    assert settings.store_specs == (
        StoreSpec("local", LOCAL, "local_path", root="/srv/b"),
        StoreSpec("r2", S3, "r2_path", conn_id="backup_r2", bucket="r2-backups"),
        StoreSpec("b2", S3, "b2_path", conn_id="backup_b2", bucket="b2.backups"),
    )
    assert settings.stores is None
    assert settings.bucket_for("b2") == "b2.backups"


def test_named_stores_keep_the_operators_order_everywhere():
    stores = {"wasabi": FOUR_STORES["wasabi"], "local": FOUR_STORES["local"], "r2": FOUR_STORES["r2"]}
    settings = parse_settings({"stores": stores})

    assert settings.store_names == ("wasabi", "local", "r2")
    assert settings.store("wasabi") == StoreSpec(
        "wasabi", S3, "wasabi_path", conn_id="backup_wasabi", bucket="third-copy"
    )
    # expected_backends not given: every type on every store, the WAL archive on the object stores only.
    assert settings.expected_backends["FULL_DATABASE"] == ["wasabi", "local", "r2"]
    assert settings.expected_backends["WAL_ARCHIVE"] == ["wasabi", "r2"]
    assert list(routes(settings)) == ["wasabi", "local", "r2"]
    # Repair prefers, among equally proven sources, the store named first.
    results = [
        check_result("b-1", "local", MISSING),
        check_result("b-1", "r2", PASSED, evidence=EVIDENCE_SIZE),
        check_result("b-1", "wasabi", PASSED, evidence=EVIDENCE_SIZE),
    ]
    assert [s["backend"] for s in plan_repairs(results, settings.store_names)[0]["sources"]] == [
        "wasabi",
        "r2",
    ]


def test_settings_with_stores_survive_the_trip_through_xcom():
    settings = parse_settings({"stores": FOUR_STORES, "expected_backends": {"FULL_DATABASE": ["wasabi"]}})

    again = Settings.from_dict(settings.to_dict())

    assert again.store_specs == settings.store_specs
    assert again.expected_backends == {"FULL_DATABASE": ["wasabi"]}


def test_stores_and_the_keys_it_replaces_cannot_both_be_set():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"stores": FOUR_STORES, "r2_bucket": "x-backups", "local_root": "/srv"})

    assert str(caught.value) == (
        "Variable 'backup_integrity': key 'stores' replaces ['local_root', 'r2_bucket', 'b2_bucket']; "
        "remove ['local_root', 'r2_bucket'] and describe those stores in 'stores'"
    )


def test_expected_backends_may_name_only_configured_stores():
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {"stores": {"wasabi": FOUR_STORES["wasabi"]}, "expected_backends": {"WAL_ARCHIVE": ["r2"]}}
        )

    assert str(caught.value) == (
        "Variable 'backup_integrity', key 'expected_backends': type 'WAL_ARCHIVE' names unknown "
        "backend(s) ['r2']; configured stores are ['wasabi']"
    )


@pytest.mark.parametrize(
    ("stores", "says"),
    [
        ([], f"{WHERE}: expected a non-empty JSON object mapping store names to their specs, got []"),
        ({}, f"{WHERE}: expected a non-empty JSON object mapping store names to their specs, got {{}}"),
        (
            {"Wasabi": FOUR_STORES["wasabi"]},
            f"{WHERE}: store name 'Wasabi' must match ^[a-z][a-z0-9_]{{0,30}}$",
        ),
        ({"w" * 32: FOUR_STORES["wasabi"]}, f"{WHERE}: store name {'w' * 32!r} must match"),
        ({"total": FOUR_STORES["wasabi"]}, f"{WHERE}: store name 'total' is reserved"),
        ({"wasabi": "s3"}, f"{WHERE}, store 'wasabi': expected a JSON object (the store's spec), got 's3'"),
        (
            {"wasabi": {**FOUR_STORES["wasabi"], "type": "gcs"}},
            f"{WHERE}, store 'wasabi', field 'type': unknown type 'gcs'; known types are ['local', 's3']",
        ),
        (
            {"wasabi": {"bucket": "third-copy"}},
            f"{WHERE}, store 'wasabi', field 'type': is required; known types are ['local', 's3']",
        ),
        (
            {"wasabi": {**FOUR_STORES["wasabi"], "region": "eu"}},
            f"{WHERE}, store 'wasabi': unknown key(s) ['region']; a 's3' store takes "
            "['bucket', 'conn_id', 'path_column', 'type']",
        ),
        (
            {"nas": {"type": "local", "root": "/srv", "path_column": "nas_path", "bucket": "x-y-z"}},
            f"{WHERE}, store 'nas': unknown key(s) ['bucket']; a 'local' store takes "
            "['path_column', 'root', 'type']",
        ),
        (
            {"wasabi": {"type": "s3", "bucket": "third-copy", "path_column": "wasabi_path"}},
            f"{WHERE}, store 'wasabi', field 'conn_id': is required for a 's3' store",
        ),
        (
            {"wasabi": {**FOUR_STORES["wasabi"], "bucket": "Third_Copy"}},
            f"{WHERE}, store 'wasabi', field 'bucket': 'Third_Copy' is not a valid bucket name",
        ),
        (
            {"wasabi": {**FOUR_STORES["wasabi"], "path_column": "wasabi path"}},
            f"{WHERE}, store 'wasabi', field 'path_column': 'wasabi path' is not a column name",
        ),
        (
            {"nas": {"type": "local", "path_column": "nas_path", "root": " "}},
            f"{WHERE}, store 'nas', field 'root': expected a non-empty string, got ' '",
        ),
    ],
)
def test_a_wrong_store_spec_is_named_with_its_store_and_field(stores, says):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"stores": stores})

    assert str(caught.value).startswith(says)


def test_an_unknown_store_is_named():
    with pytest.raises(
        ConfigError, match=r"store 'wasabi' is not configured; configured stores are \['local'"
    ):
        Settings().store("wasabi")
