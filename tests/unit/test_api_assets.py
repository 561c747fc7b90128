"""Studio assets through the API: an upload URL per PNG, the list of what is stored, a
delete that keeps earlier versions, and recipes that name an asset refused until it
exists."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from darkroom import keys, names
from tests.unit import test_api
from tests.unit.test_api import Api, _create

api = test_api.api  # the API core over moto, as test_api.py's tests have it

WATERMARKED = {"watermark": {"asset": "logo"}}


def _store(api: Api, name: str, body: bytes) -> None:
    # What the client's PUT through the URL does.
    api.s3.put_object(
        Bucket=names.RAW_BUCKET, Key=keys.asset_key(name), Body=body, ContentType="image/png"
    )


def test_an_asset_upload_url_is_signed_for_its_size_and_type_and_may_replace(api: Api) -> None:
    status, _, doc = api.call("PUT", "/studio/assets/logo", {"size": 1234})
    assert status == 200, doc
    assert doc["key"] == "assets/logo.png" and doc["method"] == "PUT"
    assert doc["headers"] == {"Content-Length": "1234", "Content-Type": "image/png"}
    signed = parse_qs(urlsplit(doc["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    # A studio replaces its logo: no If-None-Match, unlike a RAW's create-once URL.
    assert {"content-length", "content-type"} <= set(signed)
    assert "if-none-match" not in signed
    assert urlsplit(doc["url"]).path.endswith("/assets/logo.png")


def test_an_asset_name_or_size_that_cannot_be_is_refused(api: Api) -> None:
    status, _, doc = api.call("PUT", "/studio/assets/Logo.PNG", {"size": 10})
    assert status == 400 and "invalid asset name 'Logo.PNG'" in doc["message"]
    status, _, doc = api.call("PUT", "/studio/assets/logo", {"size": keys.MAX_ASSET_BYTES + 1})
    assert status == 413 and doc["max_asset_bytes"] == keys.MAX_ASSET_BYTES
    status, _, doc = api.call("PUT", "/studio/assets/logo", {"size": "12"})
    assert status == 400 and "size" in doc["message"]


def test_the_list_names_each_asset_in_its_current_version(api: Api) -> None:
    api.s3.put_bucket_versioning(
        Bucket=names.RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    _store(api, "logo", b"first")
    _store(api, "logo", b"second, longer")
    _store(api, "signature", b"sig")
    # Nothing else under the prefix passes for an asset.
    api.s3.put_object(Bucket=names.RAW_BUCKET, Key="assets/notes.txt", Body=b"x")
    status, _, doc = api.call("GET", "/studio/assets")
    assert status == 200
    assert [(a["name"], a["size"]) for a in doc["assets"]] == [
        ("logo", len(b"second, longer")),
        ("signature", 3),
    ]
    current = api.s3.head_object(Bucket=names.RAW_BUCKET, Key="assets/logo.png")["VersionId"]
    assert doc["assets"][0]["version_id"] == current


def test_a_deleted_asset_keeps_its_earlier_versions_and_is_gone_from_the_list(api: Api) -> None:
    api.s3.put_bucket_versioning(
        Bucket=names.RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    _store(api, "logo", b"png")
    status, _, doc = api.call("DELETE", "/studio/assets/logo")
    assert status == 200 and doc == {"name": "logo", "deleted": True}
    assert api.call("GET", "/studio/assets")[2] == {"assets": []}
    versions = api.s3.list_object_versions(Bucket=names.RAW_BUCKET, Prefix="assets/")
    assert len(versions["Versions"]) == 1, "a past run's manifest still names that version"
    status, _, doc = api.call("DELETE", "/studio/assets/logo")
    assert status == 404 and "no studio asset named 'logo'" in doc["message"]


def test_a_job_whose_recipe_names_a_missing_asset_is_refused_until_it_is_uploaded(
    api: Api,
) -> None:
    body = {"files": [{"name": "A.dng", "size": 10}], "recipe": WATERMARKED}
    status, _, doc = api.call("POST", "/jobs", body)
    assert status == 400
    assert doc["message"].startswith("recipe.watermark.asset: no studio asset named 'logo'")
    assert "darkroom asset put logo" in doc["message"]
    _store(api, "logo", b"png")
    created = _create(api, {"A.dng": 10}, recipe=WATERMARKED)
    assert created["status"] == "CREATED"


def test_a_reprocess_naming_a_missing_asset_is_refused_and_starts_nothing(api: Api) -> None:
    api.finish("finished", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/finished/reprocess", {"recipe": WATERMARKED})
    assert status == 400 and "no studio asset named 'logo'" in doc["message"]
    assert api.service.executions.list() == []
    _store(api, "logo", b"png")
    status, _, doc = api.call("POST", "/jobs/finished/reprocess", {"recipe": WATERMARKED})
    assert status == 202, doc
