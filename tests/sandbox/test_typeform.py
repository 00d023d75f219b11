"""The Typeform emulator, driven over real HTTP on loopback (reference §C.9)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from tests.polling import poll

AINO = "aino.virtanen@example.fi"
JUSSI = "jussi.lindstrom@example.fi"
FAST = {"rate_limit_per_second": 0, "delete_delay": 0.05, "rtbf_delay": 0.1}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(people=200, seed=42, vendors=["typeform"],
                 settings={"typeform": dict(FAST)}) as sb:
        yield sb


@pytest.fixture
def tf(box: Sandbox) -> Iterator[httpx.Client]:
    """An authenticated client on a freshly reset account (tests stay independent)."""
    base = box.urls["typeform"]
    with httpx.Client(base_url=base, timeout=10) as admin:
        admin.post("/__sandbox/reset").raise_for_status()
        admin.put("/__sandbox/settings", json=FAST).raise_for_status()
    headers = {"Authorization": f"Bearer {box.env['TYPEFORM_TOKEN']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        yield client


def form_ids(tf: httpx.Client) -> dict[str, str]:
    items = tf.get("/forms", params={"page_size": 200}).json()["items"]
    return {f["title"]: f["id"] for f in items}


def feedback(tf: httpx.Client) -> str:
    return form_ids(tf)["Kurssipalaute"]



def all_tokens(tf: httpx.Client, form_id: str) -> list[str]:
    body = tf.get(f"/forms/{form_id}/responses", params={"page_size": 1000}).json()
    assert body["total_items"] <= 1000
    return [i["token"] for i in body["items"]]


# --- auth and errors -------------------------------------------------------------------


def test_missing_and_bad_token_give_401_with_error_body(box: Sandbox, tf: httpx.Client) -> None:
    base = box.urls["typeform"]
    r = httpx.get(f"{base}/forms")
    assert r.status_code == 401
    assert r.json()["code"] == "AUTHENTICATION_FAILED" and r.json()["description"]
    r = httpx.get(f"{base}/forms", headers={"Authorization": "Bearer tfp_wrong"})
    assert r.status_code == 401 and set(r.json()) >= {"code", "description"}
    # The JS SDK sends a lower-case scheme.
    r = httpx.get(f"{base}/me", headers={"authorization": f"bearer {box.env['TYPEFORM_TOKEN']}"})
    assert r.status_code == 200


def test_unknown_form_is_404_form_not_found(tf: httpx.Client) -> None:
    for r in (tf.get("/forms/nope1234"), tf.get("/forms/nope1234/responses"),
              tf.delete("/forms/nope1234/responses", params={"included_response_ids": "x"})):
        assert r.status_code == 404
        assert r.json()["code"] == "FORM_NOT_FOUND"
        assert "description" in r.json()


# --- account, workspaces, forms -------------------------------------------------------


def test_me_workspaces_and_forms(tf: httpx.Client) -> None:
    account = tf.get("/me").json()["account_id"]
    ws = tf.get("/workspaces").json()
    assert ws["total_items"] == 1 and ws["items"][0]["account_id"] == account
    page1 = tf.get("/forms", params={"page": 1, "page_size": 2}).json()
    page2 = tf.get("/forms", params={"page": 2, "page_size": 2}).json()
    assert page1["total_items"] == 3 and page1["page_count"] == 2
    assert len(page1["items"]) == 2 and len(page2["items"]) == 1
    titles = {f["title"] for f in page1["items"] + page2["items"]}
    assert titles == {"Kurssipalaute", "Kurssi-ilmoittautuminen", "Tietopyyntö"}
    assert tf.get("/forms", params={"page_size": 201}).status_code == 400


def test_form_definitions_have_fields_refs_and_hidden(tf: httpx.Client) -> None:
    ids = form_ids(tf)
    reg = tf.get(f"/forms/{ids['Kurssi-ilmoittautuminen']}").json()
    types = {f["ref"]: f["type"] for f in reg["fields"]}
    assert types["email"] == "email" and types["phone"] == "phone_number"
    assert types["diet"] == "multiple_choice"
    assert all({"id", "ref", "title", "type"} <= set(f) for f in reg["fields"])
    req = tf.get(f"/forms/{ids['Tietopyyntö']}").json()
    assert "email" in req["hidden"]


# --- responses list -----------------------------------------------------------------------


def test_item_shape(tf: httpx.Client) -> None:
    item = tf.get(f"/forms/{feedback(tf)}/responses").json()["items"][0]
    assert {"landing_id", "token", "response_id", "landed_at", "submitted_at", "metadata",
            "hidden", "variables", "answers"} <= set(item)
    assert {"user_agent", "platform", "referer", "network_id", "browser"} <= set(item["metadata"])
    ans = item["answers"][0]
    assert {"id", "type", "ref"} <= set(ans["field"]) and "type" in ans


def test_page_size_default_max_and_sort_with_cursor(tf: httpx.Client) -> None:
    url = f"/forms/{feedback(tf)}/responses"
    body = tf.get(url).json()
    assert len(body["items"]) == 25 and body["total_items"] > 25
    assert body["page_count"] == -(-body["total_items"] // 25)
    assert tf.get(url, params={"page_size": 1000}).status_code == 200
    r = tf.get(url, params={"page_size": 1001})
    assert r.status_code == 400 and r.json()["code"] and r.json()["description"]
    token = body["items"][0]["token"]
    r = tf.get(url, params={"sort": "submitted_at,asc", "after": token})
    assert r.status_code == 400


def test_paging_to_the_end_with_after_airbyte_style(tf: httpx.Client) -> None:
    form = feedback(tf)
    url = f"/forms/{form}/responses"
    everything = all_tokens(tf, form)
    page = tf.get(url, params={"sort": "submitted_at,asc", "page_size": 7}).json()
    seen = [i["token"] for i in page["items"]]
    for _ in range(100):
        page = tf.get(url, params={"after": seen[-1], "page_size": 7}).json()
        if page["page_count"] == 0:
            break
        stamps = [i["submitted_at"] for i in page["items"]]
        assert stamps == sorted(stamps)
        seen += [i["token"] for i in page["items"]]
    else:
        raise AssertionError("paging did not end")
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == set(everything)


def test_paging_to_the_end_with_before_js_sdk_style(tf: httpx.Client) -> None:
    form = feedback(tf)
    url = f"/forms/{form}/responses"
    seen: list[str] = []
    params: dict[str, Any] = {"page_size": 10}
    for _ in range(100):
        items = tf.get(url, params=params).json()["items"]
        seen += [i["token"] for i in items]
        if len(items) < 10:
            break
        params = {"page_size": 10, "before": items[-1]["token"]}
    assert len(seen) == len(set(seen)) == len(all_tokens(tf, form))


def test_since_and_until_are_inclusive_epoch_or_iso(tf: httpx.Client) -> None:
    form = feedback(tf)
    url = f"/forms/{form}/responses"
    item = tf.get(url, params={"page_size": 1000}).json()["items"][5]
    at = datetime.strptime(item["submitted_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    epoch = int(at.timestamp())
    iso = at.strftime("%Y-%m-%dT%H:%M:%S")

    def tokens(**params: Any) -> set[str]:
        return {i["token"] for i in tf.get(url, params={"page_size": 1000, **params})
                .json()["items"]}

    assert item["token"] in tokens(since=iso, until=epoch)
    assert item["token"] in tokens(since=epoch, until=iso + "Z")
    assert item["token"] not in tokens(since=epoch + 1)
    assert item["token"] not in tokens(until=(at - timedelta(seconds=1)).isoformat())
    assert tf.get(url, params={"since": "yesterday"}).status_code == 400


def test_query_matches_answers_and_hidden_fields_case_insensitively(tf: httpx.Client) -> None:
    ids = form_ids(tf)
    hits = tf.get(f"/forms/{ids['Kurssipalaute']}/responses",
                  params={"query": "Aino.Virtanen@example.FI"}).json()
    assert hits["total_items"] >= 1
    assert any(AINO in a.get("text", "").lower() for i in hits["items"] for a in i["answers"])
    hits = tf.get(f"/forms/{ids['Tietopyyntö']}/responses", params={"query": JUSSI}).json()
    assert hits["total_items"] == 1
    assert hits["items"][0]["hidden"]["email"] == JUSSI
    none = tf.get(f"/forms/{ids['Tietopyyntö']}/responses",
                  params={"query": "nobody@nowhere.invalid"}).json()
    assert none == {"total_items": 0, "page_count": 0, "items": []}


def test_included_response_ids_and_response_type(tf: httpx.Client) -> None:
    form = feedback(tf)
    url = f"/forms/{form}/responses"
    wanted = all_tokens(tf, form)[3:6]
    got = tf.get(url, params={"included_response_ids": ",".join(wanted)}).json()
    assert sorted(i["token"] for i in got["items"]) == sorted(wanted)
    assert tf.get(url, params={"response_type": "completed"}).json()["total_items"] > 0
    assert tf.get(url, params={"response_type": "partial"}).json()["total_items"] == 0


# --- deletes ----------------------------------------------------------------------------


def test_delete_by_ids_in_query_is_async_and_ignores_unknown(
        box: Sandbox, tf: httpx.Client) -> None:
    form = feedback(tf)
    victims = all_tokens(tf, form)[:2]
    r = tf.delete(f"/forms/{form}/responses",
                  params={"included_response_ids": ",".join([*victims, "unknown-id"])})
    assert r.status_code == 200
    poll(lambda: not set(victims) & set(all_tokens(tf, form)))
    rec = httpx.get(f"{box.urls['typeform']}/__sandbox/records/response/{victims[0]}").json()
    assert rec["state"] == "deleted"


def test_delete_by_tokens_in_json_body(tf: httpx.Client) -> None:
    form = feedback(tf)
    victims = all_tokens(tf, form)[-3:]
    r = tf.request("DELETE", f"/forms/{form}/responses", json=victims)
    assert r.status_code == 200
    poll(lambda: not set(victims) & set(all_tokens(tf, form)))
    r = tf.delete(f"/forms/{form}/responses", params={"included_tokens": victims[0]})
    assert r.status_code == 200  # already gone: ignored


def test_delete_needs_ids_and_caps_at_1000(tf: httpx.Client) -> None:
    form = feedback(tf)
    assert tf.delete(f"/forms/{form}/responses").status_code == 400
    too_many = ",".join(f"id{i}" for i in range(1001))
    r = tf.delete(f"/forms/{form}/responses", params={"included_response_ids": too_many})
    assert r.status_code == 400


def test_after_cursor_survives_deletion_of_its_response(tf: httpx.Client) -> None:
    form = feedback(tf)
    url = f"/forms/{form}/responses"
    first = tf.get(url, params={"sort": "submitted_at,asc", "page_size": 5}).json()["items"]
    cursor = first[-1]["token"]
    tf.delete(url, params={"included_response_ids": cursor})
    poll(lambda: cursor not in all_tokens(tf, form))
    rest = tf.get(url, params={"after": cursor, "page_size": 1000}).json()
    assert rest["total_items"] == len(all_tokens(tf, form)) - 4


# --- RTBF -------------------------------------------------------------------------------


def test_rtbf_job_deletes_every_match_across_forms(box: Sandbox, tf: httpx.Client) -> None:
    account = tf.get("/me").json()["account_id"]
    base = box.urls["typeform"]
    before = httpx.get(f"{base}/__sandbox/find", params={"email": AINO}).json()["records"]
    assert len({r["form_id"] for r in before}) >= 2  # registration + feedback free text
    jobs = tf.request("DELETE", f"/rtbf/{account}/responses", json=["Aino.Virtanen@Example.fi"])
    assert jobs.status_code == 200
    (job_id,) = jobs.json()

    def done() -> bool:
        body = tf.get(f"/rtbf/{account}/job/{job_id}").json()
        assert body["accountID"] == account and body["token"] == job_id
        return body["status"] == "Done"

    poll(done)
    after = httpx.get(f"{base}/__sandbox/find", params={"email": AINO}).json()["records"]
    assert after == []
    for form in form_ids(tf).values():
        hits = tf.get(f"/forms/{form}/responses", params={"query": AINO}).json()
        assert hits["total_items"] == 0
    # Other people's responses are untouched.
    assert httpx.get(f"{base}/__sandbox/find", params={"email": JUSSI}).json()["records"]


def test_rtbf_matches_hidden_field_equality(box: Sandbox, tf: httpx.Client) -> None:
    account = tf.get("/me").json()["account_id"]
    (job_id,) = tf.request("DELETE", f"/rtbf/{account}/responses", json=[JUSSI.upper()]).json()
    poll(lambda: tf.get(f"/rtbf/{account}/job/{job_id}").json()["status"] == "Done")
    rec = httpx.get(f"{box.urls['typeform']}/__sandbox/find", params={"email": JUSSI}).json()
    assert rec["records"] == []


def test_rtbf_wrong_account_bad_body_unknown_job(tf: httpx.Client) -> None:
    account = tf.get("/me").json()["account_id"]
    r = tf.request("DELETE", "/rtbf/someoneelse/responses", json=[AINO])
    assert r.status_code == 403 and r.json()["code"]
    assert tf.get("/rtbf/someoneelse/job/x").status_code == 403
    assert tf.request("DELETE", f"/rtbf/{account}/responses", json={"email": AINO}
                      ).status_code == 400
    assert tf.get(f"/rtbf/{account}/job/no-such-job").status_code == 404


# --- rate limit and inspection ------------------------------------------------------------


def test_rate_limit_two_per_second_gives_429(box: Sandbox, tf: httpx.Client) -> None:
    base = box.urls["typeform"]
    httpx.put(f"{base}/__sandbox/settings", json={"rate_limit_per_second": 2}
              ).raise_for_status()
    statuses = [tf.get("/me") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, "six immediate requests must exceed 2 req/s"
    assert limited[0].json()["code"] and "Retry-After" in limited[0].headers
    calls = httpx.get(f"{base}/__sandbox/calls").json()["calls"]
    assert any(c["route"] == "/me" and c["status"] == 429 for c in calls)


def test_settings_reject_unknown_knobs(box: Sandbox, tf: httpx.Client) -> None:
    r = httpx.put(f"{box.urls['typeform']}/__sandbox/settings", json={"nope": 1})
    assert r.status_code == 400


def test_deterministic_for_a_seed() -> None:
    from sandbox.people import generate_people
    from sandbox.typeform.state import TypeformState

    people = generate_people(50, seed=7)
    a, b = TypeformState(people, 7), TypeformState(people, 7)
    assert [[r.raw for r in f.responses] for f in a.forms.values()] == \
        [[r.raw for r in f.responses] for f in b.forms.values()]


def test_injected_faults_are_typeform_shaped_and_counted(box: Sandbox, tf: httpx.Client) -> None:
    base = box.urls["typeform"]
    httpx.put(f"{base}/__sandbox/faults", json={"error_rate": 1}).raise_for_status()
    r = tf.get("/forms")
    assert r.status_code == 500 and r.json()["code"] == "INTERNAL_SERVER_ERROR"
    calls = httpx.get(f"{base}/__sandbox/calls").json()["calls"]
    assert any(c["route"] == "/forms" and c["status"] == 500 for c in calls)
