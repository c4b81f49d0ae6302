"""The analyst lake's object-storage settings (base/settings.py): the analysts' own key, the
store's settings shared with the hub's unless set, the overlap check on s3 URLs, and no secret
in any repr or message."""

from __future__ import annotations

import pytest

from base import settings

HUB_SECRET, ANALYST_SECRET = "hub-secret-Z1", "analyst-secret-Z2"


@pytest.fixture
def s3_env(hub_home, monkeypatch):
    for key, value in {
        "HUB_LAKE_DATA_PATH": "s3://hub-lake/shangluo/",
        "HUB_ANALYST_LAKE_DATA_PATH": "s3://hub-analyst/shangluo/",
        "HUB_LAKE_S3_ENDPOINT": "oss.example.gov.cn",
        "HUB_LAKE_S3_KEY_ID": "hub",
        "HUB_LAKE_S3_SECRET": HUB_SECRET,
        "HUB_LAKE_S3_URL_STYLE": "path",
        "HUB_ANALYST_LAKE_S3_KEY_ID": "analyst",
        "HUB_ANALYST_LAKE_S3_SECRET": ANALYST_SECRET,
    }.items():
        monkeypatch.setenv(key, value)
    for name in ("ENDPOINT", "REGION", "URL_STYLE", "USE_SSL"):
        monkeypatch.delenv(f"HUB_ANALYST_LAKE_S3_{name}", raising=False)


def test_the_analysts_key_with_the_hubs_store_settings(s3_env, monkeypatch):
    s3 = settings.analyst_lake_s3()
    assert (s3.key_id, s3.secret, s3.prefix) == ("analyst", ANALYST_SECRET, "HUB_ANALYST_LAKE_S3_")
    assert (s3.endpoint, s3.url_style, s3.region, s3.use_ssl) == (
        "oss.example.gov.cn", "path", "us-east-1", True,
    )  # fmt: skip
    assert ANALYST_SECRET not in repr(s3) and "secret='***'" in repr(s3)
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_ENDPOINT", "oss-internal.example.gov.cn")
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_URL_STYLE", "vhost")
    s3 = settings.analyst_lake_s3()
    assert (s3.endpoint, s3.url_style) == ("oss-internal.example.gov.cn", "vhost")
    assert settings.lake_s3().endpoint == "oss.example.gov.cn"  # the hub's are its own


def test_the_analysts_key_is_required_and_never_the_hubs(s3_env, monkeypatch):
    monkeypatch.delenv("HUB_ANALYST_LAKE_S3_SECRET")
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_KEY_ID", "")
    with pytest.raises(settings.SettingsError) as raised:
        settings.analyst_lake_s3()
    message = str(raised.value)
    assert "HUB_ANALYST_LAKE_S3_KEY_ID and HUB_ANALYST_LAKE_S3_SECRET" in message
    assert "HUB_ANALYST_LAKE_DATA_PATH=s3://hub-analyst/shangluo/" in message
    assert HUB_SECRET not in message  # the hub's key is never a fallback
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_KEY_ID", "hub")
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_SECRET", HUB_SECRET)
    with pytest.raises(settings.SettingsError, match="separate key") as raised:
        settings.analyst_lake_s3()
    assert HUB_SECRET not in str(raised.value)


def test_a_bad_store_setting_names_the_analysts_setting(s3_env, monkeypatch):
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_USE_SSL", "maybe")
    with pytest.raises(settings.SettingsError, match="HUB_ANALYST_LAKE_S3_USE_SSL") as raised:
        settings.analyst_lake_s3()
    assert ANALYST_SECRET not in str(raised.value)


def test_the_hubs_key_for_the_analyst_path_says_which_path_needs_it(s3_env, monkeypatch):
    monkeypatch.delenv("HUB_LAKE_S3_SECRET")
    with pytest.raises(settings.SettingsError, match="HUB_LAKE_S3_KEY_ID and HUB_LAKE_S3_SECRET"):
        settings.lake_s3("HUB_ANALYST_LAKE_DATA_PATH=s3://hub-analyst/shangluo/")


@pytest.mark.parametrize(
    ("main", "analyst"),
    [
        ("s3://hub/lake/", "s3://hub/lake/analyst/"),  # inside the main lake
        ("s3://hub/lake/x/", "s3://hub/lake/"),  # the main lake inside it
        ("s3://hub-lake/", "S3://Hub-Lake/analyst"),  # scheme and bucket in another case
        ("s3://hub-lake/shangluo", "s3://hub-lake/shangluo/"),  # the same, but for a slash
    ],
)
def test_an_analyst_path_overlapping_the_main_lake_is_refused(hub_home, monkeypatch, main, analyst):
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", main)
    monkeypatch.setenv("HUB_ANALYST_LAKE_DATA_PATH", analyst)
    with pytest.raises(settings.SettingsError, match="overlaps the main lake"):
        settings.analyst_lake_data_path()


@pytest.mark.parametrize(
    ("main", "analyst"),
    [
        ("s3://hub-lake/shangluo/", "s3://hub-analyst/shangluo/"),  # two buckets
        ("s3://hub/lake/", "s3://hub/lake-analyst/"),  # one bucket, two prefixes
        ("s3://hub-lake/shangluo/", "/srv/analyst-lake/"),  # one on the store, one local
    ],
)
def test_separate_paths_are_accepted(hub_home, monkeypatch, main, analyst):
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", main)
    monkeypatch.setenv("HUB_ANALYST_LAKE_DATA_PATH", analyst)
    assert settings.analyst_lake_data_path() == analyst.rstrip("/") + "/"


def test_a_local_analyst_path_through_a_symlink_into_the_main_lake_is_refused(
    hub_home, tmp_path, monkeypatch
):
    main = tmp_path / "lake" / "data"
    main.mkdir(parents=True)
    (tmp_path / "looks-separate").symlink_to(main)
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", str(main))
    monkeypatch.setenv("HUB_ANALYST_LAKE_DATA_PATH", str(tmp_path / "looks-separate" / "a"))
    with pytest.raises(settings.SettingsError, match="overlaps the main lake"):
        settings.analyst_lake_data_path()
