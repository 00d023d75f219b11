"""The official `mailchimp-marketing` SDK against the emulator, changed only by its host."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import mailchimp_marketing
import pytest
from mailchimp_marketing.api_client import ApiClientError

from sandbox import Sandbox

EMAIL = "sdk.testaaja@example.com"


@pytest.fixture
def client(sb: Sandbox) -> Iterator[mailchimp_marketing.Client]:
    httpx.post(sb.urls["mailchimp"] + "/__sandbox/reset").raise_for_status()
    c = mailchimp_marketing.Client()
    c.set_config({"api_key": sb.env["MAILCHIMP_API_KEY"], "server": "us21", "timeout": 10})
    c.api_client.host = sb.env["MAILCHIMP_BASE_URL"]
    yield c


def test_sdk_round_trip(client: mailchimp_marketing.Client) -> None:
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    audiences = client.lists.get_all_lists()["lists"]
    lid = {a["name"]: a["id"] for a in audiences}["Uutiskirje"]
    added = client.lists.add_list_member(lid, {"email_address": EMAIL, "status": "subscribed",
                                               "merge_fields": {"FNAME": "Sdk"}})
    h = hashlib.md5(EMAIL.encode()).hexdigest()
    assert added["id"] == h
    got = client.lists.get_list_member(lid, h)
    assert got["merge_fields"]["FNAME"] == "Sdk"
    updated = client.lists.update_list_member(lid, h, {"merge_fields": {"LNAME": "Testaaja"}})
    assert updated["full_name"] == "Sdk Testaaja"
    unsub = client.lists.update_list_member(lid, h, {"status": "unsubscribed"})
    assert unsub["status"] == "unsubscribed"
    page = client.lists.get_list_members_info(lid, count=1000,
                                              exclude_fields=["members._links"])
    assert page["total_items"] >= len(page["members"]) > 0
    client.lists.delete_list_member(lid, h)  # archive: 204, SDK returns a Response
    assert client.lists.get_list_member(lid, h)["status"] == "archived"
    client.lists.delete_list_member_permanent(lid, h)  # sends the literal body `null`
    with pytest.raises(ApiClientError) as missing:
        client.lists.get_list_member(lid, h)
    assert missing.value.status_code == 404
    with pytest.raises(ApiClientError) as readd:
        client.lists.add_list_member(lid, {"email_address": EMAIL, "status": "subscribed"})
    assert readd.value.status_code == 400
    assert isinstance(readd.value.text, str)  # problem+json is not parsed by the SDK
    assert json.loads(readd.value.text)["title"] == "Forgotten Email Not Subscribed"


def test_sdk_wrong_key(sb: Sandbox) -> None:
    c = mailchimp_marketing.Client()
    c.set_config({"api_key": "0" * 32 + "-us21", "server": "us21"})
    c.api_client.host = sb.env["MAILCHIMP_BASE_URL"]
    with pytest.raises(ApiClientError) as err:
        c.ping.get()
    assert err.value.status_code == 401
    assert json.loads(err.value.text)["title"] == "API Key Invalid"


def test_sdk_reads_activity_feed_merge_fields_and_goals(client: mailchimp_marketing.Client,
                                                        ) -> None:
    lid = {a["name"]: a["id"] for a in client.lists.get_all_lists()["lists"]}["Uutiskirje"]
    h = hashlib.md5(b"aino.virtanen@example.fi").hexdigest()
    feed = client.lists.get_list_member_activity_feed(lid, h, count=5, offset=5,
                                                      activity_filters=["sent", "open"])
    assert len(feed["activity"]) == 5 and feed["total_items"] > 10
    assert {a["activity_type"] for a in feed["activity"]} <= {"sent", "open"}
    fields = client.lists.get_list_merge_fields(lid, count=1000)
    assert {f["tag"]: f["name"] for f in fields["merge_fields"]}["LNAME"] == "Sukunimi"
    assert client.lists.getListMemberGoals(lid, h)["goals"]
    with pytest.raises(ApiClientError) as by_email:  # the hash, not the e-mail
        client.lists.delete_list_member_permanent(lid, "aino.virtanen@example.fi")
    assert by_email.value.status_code == 404
