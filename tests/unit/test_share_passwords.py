"""Password-protected shares: the scrypt hash, the signed unlock cookie, the gate every
share route goes through, the unlock route and its per-share limit."""

# ruff: noqa: F811

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

import pytest

from darkroom.api import share_access
from darkroom.api.share_access import (
    PasswordHash,
    cookie_opens,
    hash_password,
    password_matches,
    sign_cookie,
)
from darkroom.aws.shares import ShareStore
from darkroom.errors import TransientError
from tests.unit.test_api import COOKIE_KEY, Api, api  # noqa: F401

PASSWORD = "smith-wedding-26"
TOKEN_SHA = hashlib.sha256(b"a token").hexdigest()


# -- the hash -------------------------------------------------------------------------
def test_the_stored_hash_names_scrypt_and_its_parameters_and_never_holds_the_password() -> None:
    stored = hash_password(PASSWORD)
    parsed = PasswordHash.parse(stored)
    assert stored.startswith("scrypt$n=32768,r=8,p=1$")
    assert (parsed.n, parsed.r, parsed.p, len(parsed.salt), len(parsed.digest)) == (
        32768,
        8,
        1,
        16,
        32,
    )
    assert PASSWORD not in stored
    assert password_matches(PASSWORD, stored)
    assert not password_matches(PASSWORD + " ", stored)
    assert not password_matches("", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second
    assert PasswordHash.parse(first).salt != PasswordHash.parse(second).salt


def test_a_hash_made_with_other_parameters_still_checks_with_its_own() -> None:
    # What raising the parameters later relies on: old hashes carry theirs.
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    stored = str(PasswordHash(2**14, 8, 1, salt, digest))
    assert stored.startswith("scrypt$n=16384,r=8,p=1$")
    assert password_matches(PASSWORD, stored)
    assert not password_matches("other", stored)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "bcrypt$x$y$z", "scrypt$n=abc,r=8,p=1$AA$AA", "scrypt$n=3,r=8,p=1$AA$AA"],
)
def test_a_damaged_hash_opens_nothing(stored: str) -> None:
    assert not password_matches(PASSWORD, stored)


# -- the cookie -----------------------------------------------------------------------
def test_a_cookie_opens_its_share_until_it_expires() -> None:
    stored = hash_password(PASSWORD)
    value = sign_cookie(COOKIE_KEY, TOKEN_SHA, stored, expires=2000)
    assert cookie_opens(COOKIE_KEY, value, TOKEN_SHA, stored, now=1999)
    assert not cookie_opens(COOKIE_KEY, value, TOKEN_SHA, stored, now=2000)


def test_a_tampered_forged_or_foreign_cookie_opens_nothing() -> None:
    stored = hash_password(PASSWORD)
    value = sign_cookie(COOKIE_KEY, TOKEN_SHA, stored, expires=2000)
    version, expires, signature = value.split(".")
    stretched = f"{version}.9999999999.{signature}"
    flipped = f"{version}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    for bad in (stretched, flipped, "", "v1..", "v1.2000.", "v2.2000." + signature, "garbage"):
        assert not cookie_opens(COOKIE_KEY, bad, TOKEN_SHA, stored, now=1000), bad
    # Another deployment's key, another share, a new password (a new salt).
    assert not cookie_opens(b"other key", value, TOKEN_SHA, stored, now=1000)
    assert not cookie_opens(COOKIE_KEY, value, "0" * 64, stored, now=1000)
    assert not cookie_opens(COOKIE_KEY, value, TOKEN_SHA, hash_password(PASSWORD), now=1000)
    # No key at all signs and opens nothing.
    assert not cookie_opens(b"", value, TOKEN_SHA, stored, now=1000)
    with pytest.raises(ValueError, match="no share cookie key"):
        sign_cookie(b"", TOKEN_SHA, stored, expires=2000)


# -- through the API --------------------------------------------------------------------
def _protected(api: Api, **body: Any) -> dict[str, Any]:
    api.finish("job1", {"A.dng": 1, "B.dng": 1})
    return api.share("job1", password=PASSWORD, **body)


def _unlock(api: Api, token: str, password: str = PASSWORD) -> tuple[int, dict[str, str], Any]:
    return api.call("POST", f"/share/{token}/unlock", {"password": password})


def _cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";")[0]


def test_a_protected_share_refuses_every_share_route_without_its_cookie(api: Api) -> None:
    created = _protected(api)
    token = created["token"]
    assert created["password"] is True
    for path in (
        f"/share/{token}",
        f"/share/{token}/files/A.dng/web",
        f"/share/{token}/archives/web",
    ):
        status, headers, doc = api.call("GET", path)
        assert status == 401, path
        assert doc["error"] == "password_required"
        assert "location" not in headers


def test_the_right_password_sets_a_scoped_signed_cookie_that_opens_the_gallery_and_files(
    api: Api,
) -> None:
    token = _protected(api, expires_in=30 * 86400)["token"]
    status, headers, _ = _unlock(api, token)
    assert status == 204
    attributes = [a.strip() for a in headers["set-cookie"].split(";")]
    assert attributes[0].startswith(f"{share_access.COOKIE_NAME}=v1.")
    assert f"Path=/share/{token}" in attributes
    assert {"HttpOnly", "SameSite=Lax", "Secure"} <= set(attributes)
    assert f"Max-Age={7 * 86400}" in attributes
    cookie = _cookie_of(headers)
    status, _, doc = api.call("GET", f"/share/{token}", cookies=[cookie])
    assert status == 200
    assert sorted(f["name"] for f in doc["files"]) == ["A.dng", "B.dng"]
    status, headers, _ = api.call("GET", f"/share/{token}/files/A.dng/web", cookies=[cookie])
    assert status == 302 and headers["location"].startswith("https://")
    # Past the cookie's life the gallery asks again.
    api.now[0] += 7 * 86400
    assert api.call("GET", f"/share/{token}", cookies=[cookie])[0] == 401


def test_the_cookie_never_outlives_the_share(api: Api) -> None:
    token = _protected(api, expires_in=3600)["token"]
    _, headers, _ = _unlock(api, token)
    assert "Max-Age=3600" in headers["set-cookie"]


def test_a_wrong_password_is_refused_with_no_cookie(api: Api) -> None:
    token = _protected(api)["token"]
    status, headers, doc = _unlock(api, token, "not-the-password")
    assert status == 401
    assert doc == {"error": "password_required", "message": "wrong password"}
    assert "set-cookie" not in headers


def test_one_shares_cookie_does_not_open_another(api: Api) -> None:
    first = _protected(api)["token"]
    second = api.share("job1", password=PASSWORD)["token"]
    cookie = _cookie_of(_unlock(api, first)[1])
    assert api.call("GET", f"/share/{second}", cookies=[cookie])[0] == 401


def test_revoking_a_share_ends_its_unlocked_browsers(api: Api) -> None:
    created = _protected(api)
    token = created["token"]
    cookie = _cookie_of(_unlock(api, token)[1])
    assert api.call("DELETE", f"/jobs/job1/shares/{created['share_id']}")[0] == 204
    assert api.call("GET", f"/share/{token}", cookies=[cookie])[0] == 410


def test_the_password_is_never_returned_nor_its_hash(api: Api) -> None:
    created = _protected(api)
    _, _, listed = api.call("GET", "/jobs/job1/shares")
    (view,) = listed["shares"]
    assert view["password"] is True
    for answer in (created, listed):
        text = str(answer)
        assert PASSWORD not in text and "scrypt" not in text


@pytest.mark.parametrize("password", ["short", "x" * 129])
def test_a_password_out_of_bounds_is_refused_without_echoing_it(api: Api, password: str) -> None:
    api.finish("job1", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/job1/shares", {"password": password})
    assert status == 400
    assert doc["message"].startswith("invalid request: password:")
    assert password not in doc["message"]


def test_a_deployment_without_its_cookie_key_refuses_to_make_a_protected_share(
    api: Api,
) -> None:
    api.service.share_cookie_key = b""
    api.finish("job1", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/job1/shares", {"password": PASSWORD})
    assert status == 409
    assert "share cookie key" in doc["message"]


def test_a_share_without_a_password_needs_no_cookie(api: Api) -> None:
    api.finish("job1", {"A.dng": 1})
    created = api.share("job1")
    assert created["password"] is False
    assert api.call("GET", f"/share/{created['token']}")[0] == 200
    status, headers, _ = _unlock(api, created["token"], "anything")
    assert status == 204 and "set-cookie" not in headers


# -- the limit --------------------------------------------------------------------------
def test_five_wrong_passwords_in_fifteen_minutes_then_429_with_retry_after(api: Api) -> None:
    token = _protected(api)["token"]
    api.now[0] = 1_800_000_000.0 - 1_800_000_000 % 900 + 100  # 100 s into a window
    for _ in range(5):
        assert _unlock(api, token, "wrong-guess")[0] == 401
    status, headers, doc = _unlock(api, token, "wrong-guess")
    assert status == 429
    assert doc["error"] == "too_many_attempts"
    assert headers["retry-after"] == "800" and doc["retry_after"] == 800
    # Locked means locked: the right password waits too.
    assert _unlock(api, token)[0] == 429
    api.now[0] += 800
    assert _unlock(api, token)[0] == 204


def test_right_passwords_do_not_use_up_the_limit(api: Api) -> None:
    token = _protected(api)["token"]
    for _ in range(8):
        assert _unlock(api, token)[0] == 204
    for _ in range(5):
        assert _unlock(api, token, "wrong-guess")[0] == 401
    assert _unlock(api, token)[0] == 429


def test_the_limit_is_per_share(api: Api) -> None:
    first = _protected(api)["token"]
    second = api.share("job1", password=PASSWORD)["token"]
    for _ in range(6):
        _unlock(api, first, "wrong-guess")
    assert _unlock(api, first)[0] == 429
    assert _unlock(api, second)[0] == 204


def test_the_attempt_counter_expires_by_ttl_and_stays_out_of_the_jobs_share_list(
    api: Api,
) -> None:
    created = _protected(api)
    _unlock(api, created["token"], "wrong-guess")
    items = api.ddb.scan(TableName="darkroom-shares")["Items"]
    (counter,) = [i for i in items if "#unlock#" in i["share_id"]["S"]]
    assert counter["attempts"] == {"N": "1"}
    assert int(counter["expires_ttl"]["N"]) <= api.now[0] + 2 * 900
    assert [s["share_id"] for s in api.call("GET", "/jobs/job1/shares")[2]["shares"]] == [
        created["share_id"]
    ]


def test_when_the_attempt_cannot_be_counted_nothing_is_unlocked(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _protected(api)["token"]

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise TransientError("DynamoDB: ProvisionedThroughputExceededException (injected)")

    monkeypatch.setattr(ShareStore, "count_unlock_attempt", failing)
    status, headers, doc = _unlock(api, token)
    assert status == 503
    assert doc["error"] == "unavailable"
    assert "cannot be checked right now" in doc["message"]
    assert "set-cookie" not in headers
    assert api.call("GET", f"/share/{token}")[0] == 401


# -- the browser's page and form ---------------------------------------------------------
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_browser_gets_the_unlock_form_with_a_strict_csp(api: Api) -> None:
    token = _protected(api)["token"]
    status, headers, page = api.call(
        "GET", f"/share/{token}/files/A.dng/web", headers=HTML, query={"download": "1"}
    )
    assert status == 401
    assert headers["content-type"].startswith("text/html")
    assert f'action="https://api.example.test/share/{token}/unlock"' in page
    assert 'type="password"' in page and "<script" not in page
    policy = headers["content-security-policy"]
    assert "form-action https://api.example.test" in policy
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert headers["referrer-policy"] == "no-referrer"


def _form(api: Api, token: str, password: str, next_path: str = "") -> Any:
    body = urlencode({"password": password, "next": next_path})
    return api.call(
        "POST",
        f"/share/{token}/unlock",
        body,
        headers={**HTML, "content-type": "application/x-www-form-urlencoded"},
    )


def test_the_form_sends_the_browser_back_where_it_was_going_with_the_cookie(api: Api) -> None:
    token = _protected(api)["token"]
    status, headers, _ = _form(api, token, PASSWORD, "/files/A.dng/web?download=1")
    assert status == 303
    assert headers["location"] == (
        f"https://api.example.test/share/{token}/files/A.dng/web?download=1"
    )
    assert headers["set-cookie"].startswith(share_access.COOKIE_NAME)


@pytest.mark.parametrize("elsewhere", ["//evil.test/x", "https://evil.test", "/../../jobs", "x"])
def test_the_form_never_sends_the_browser_outside_the_share(api: Api, elsewhere: str) -> None:
    token = _protected(api)["token"]
    status, headers, _ = _form(api, token, PASSWORD, elsewhere)
    assert status == 303
    assert headers["location"] == f"https://api.example.test/share/{token}"


def test_a_wrong_password_in_the_form_shows_the_form_again_saying_so(api: Api) -> None:
    token = _protected(api)["token"]
    status, headers, page = _form(api, token, "wrong-guess", "/files/A.dng/web")
    assert status == 401
    assert "That password is not right" in page
    assert 'name="next" value="/files/A.dng/web"' in page
    for _ in range(5):
        _form(api, token, "wrong-guess")
    status, headers, page = _form(api, token, "wrong-guess")
    assert status == 429 and int(headers["retry-after"]) > 0
    assert "too many tries" in page.lower()


# -- changing the password ----------------------------------------------------------------
def test_a_new_password_ends_every_unlocked_browser_and_opens_with_the_new_one(
    api: Api,
) -> None:
    created = _protected(api)
    token = created["token"]
    cookie = _cookie_of(_unlock(api, token)[1])
    path = f"/jobs/job1/shares/{created['share_id']}/password"
    status, _, view = api.call("PUT", path, {"password": "a-new-password"})
    assert status == 200 and view["password"] is True
    assert "a-new-password" not in str(view)
    assert api.call("GET", f"/share/{token}", cookies=[cookie])[0] == 401
    assert _unlock(api, token)[0] == 401
    assert _unlock(api, token, "a-new-password")[0] == 204


def test_removing_the_password_opens_the_link_to_anyone_who_has_it(api: Api) -> None:
    created = _protected(api)
    path = f"/jobs/job1/shares/{created['share_id']}/password"
    status, _, view = api.call("PUT", path, {"password": None})
    assert status == 200 and view["password"] is False
    assert api.call("GET", f"/share/{created['token']}")[0] == 200


def test_a_revoked_or_unknown_link_keeps_its_password(api: Api) -> None:
    created = _protected(api)
    path = f"/jobs/job1/shares/{created['share_id']}/password"
    assert (
        api.call("PUT", "/jobs/job1/shares/" + "0" * 20 + "/password", {"password": None})[0] == 404
    )
    assert (
        api.call("PUT", f"/jobs/other/shares/{created['share_id']}/password", {"password": None})[0]
        == 404
    )
    api.call("DELETE", f"/jobs/job1/shares/{created['share_id']}")
    status, _, doc = api.call("PUT", path, {"password": None})
    assert status == 409 and "revoked" in doc["message"]


def test_a_browser_whose_attempt_cannot_be_counted_is_told_to_try_again_not_let_in(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _protected(api)["token"]

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise TransientError("DynamoDB: ProvisionedThroughputExceededException (injected)")

    monkeypatch.setattr(ShareStore, "count_unlock_attempt", failing)
    status, headers, page = _form(api, token, PASSWORD, "/files/A.dng/web")
    assert status == 503
    assert "We could not check the password just now" in page
    assert 'name="next" value="/files/A.dng/web"' in page
    assert "set-cookie" not in headers and "location" not in headers


def test_the_cookie_key_is_read_once_and_a_key_that_cannot_be_read_opens_nothing(
    api: Api,
) -> None:
    api.finish("job1", {"A.dng": 1})
    open_link = api.share("job1")["token"]
    token = api.share("job1", password=PASSWORD)["token"]
    reads: list[int] = []

    def unreachable() -> bytes:
        reads.append(1)
        raise TransientError("Secrets Manager: connection reset (injected)")

    api.service.share_cookie_key = unreachable
    # What needs no key is served as before.
    assert api.call("GET", f"/share/{open_link}")[0] == 200
    assert reads == []
    status, _, doc = api.call("GET", f"/share/{token}")
    assert (status, doc["error"]) == (503, "unavailable")
    assert _unlock(api, token)[0] == 503

    def reachable() -> bytes:
        reads.append(1)
        return COOKIE_KEY

    reads.clear()
    api.service.share_cookie_key = reachable
    cookie = _cookie_of(_unlock(api, token)[1])
    assert api.call("GET", f"/share/{token}", cookies=[cookie])[0] == 200
    assert reads == [1], "read once, then kept"
