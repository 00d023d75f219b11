"""Benchmark: how fast the sandbox serves full pages (it must never be the bottleneck).

    python bench/sandbox.py --people 25000

Starts the sandbox in a child process (so client and server do not share a GIL), then
pages through every Pipedrive person (limit 500), every Mailchimp member of each
audience (count 1000), every Typeform response (page_size 1000) and the Netvisor
customer list, with one plain httpx client. Prints pages/s and ms per page per vendor,
plus a floor measured in the same run (GET /ping-like cheapest call), so the numbers
read as ratios on whatever machine runs them. Not a test: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.server import Sandbox  # noqa: E402

HTTP_TIME = [0.0]  # seconds spent in client.get (transfer), excluding the client's JSON decode


def get(client: httpx.Client, url: str, **kwargs: object) -> httpx.Response:
    """GET and account the wire time apart from decoding (the client's cost, not ours)."""
    t = time.perf_counter()
    response = client.get(url, **kwargs)  # type: ignore[arg-type]
    HTTP_TIME[0] += time.perf_counter() - t
    return response


def report(name: str, pages: int, items: int, seconds: float) -> None:
    wire = HTTP_TIME[0]
    HTTP_TIME[0] = 0.0
    print(f"{name:34s} pages={pages:5d} items={items:7d} "
          f"{pages / seconds:8.1f} pages/s {1000 * seconds / max(pages, 1):8.2f} ms/page "
          f"(request only {1000 * wire / max(pages, 1):7.2f} ms/page)")


def bench_floor(client: httpx.Client, url: str, token: str) -> None:
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        get(client, url + "/api/v2/persons", params={"limit": 1},
                   headers={"x-api-token": token})
    report("floor (1-person page)", n, n, time.perf_counter() - t)


def bench_pipedrive(client: httpx.Client, url: str, token: str) -> None:
    pages = items = 0
    cursor = None
    t = time.perf_counter()
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        body = get(client, url + "/api/v2/persons", params=params,
                          headers={"x-api-token": token}).json()
        pages += 1
        items += len(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if not cursor:
            break
    report("pipedrive persons (500)", pages, items, time.perf_counter() - t)


def bench_mailchimp(client: httpx.Client, base: str, key: str) -> None:
    auth = ("bench", key)
    audiences = get(client, base + "/lists", auth=auth).json()["lists"]
    for aud in audiences:
        pages = items = offset = 0
        t = time.perf_counter()
        while True:
            body = get(client, f"{base}/lists/{aud['id']}/members", auth=auth, params={
                "count": 1000, "offset": offset, "exclude_fields": "members._links"}).json()
            pages += 1
            items += len(body["members"])
            offset += 1000
            if offset >= body["total_items"]:
                break
        report(f"mailchimp {aud['name']} (1000)", pages, items, time.perf_counter() - t)


def bench_typeform(client: httpx.Client, base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    forms = get(client, base + "/forms", params={"page_size": 200}, headers=headers).json()
    pages = items = 0
    t = time.perf_counter()
    for form in forms.get("items", []):
        before = None
        while True:
            params: dict[str, str | int] = {"page_size": 1000}
            if before:
                params["before"] = before
            body = get(client, f"{base}/forms/{form['id']}/responses", params=params,
                              headers=headers).json()
            pages += 1
            got = body.get("items", [])
            items += len(got)
            if len(got) < 1000:
                break
            before = got[-1]["token"]
    report("typeform responses (1000)", pages, items, time.perf_counter() - t)


def bench_netvisor(client: httpx.Client, env: dict[str, str]) -> None:
    url = env["NETVISOR_BASE_URL"] + "/customerlist.nv"
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        tx = uuid.uuid4().hex
        parts = [url, env["NETVISOR_SENDER"], env["NETVISOR_CUSTOMER_ID"], stamp,
                 env["NETVISOR_LANGUAGE"], env["NETVISOR_ORGANISATION_ID"], tx,
                 env["NETVISOR_CUSTOMER_KEY"], env["NETVISOR_PARTNER_KEY"]]
        mac = hashlib.sha256("&".join(parts).encode()).hexdigest()
        get(client, url, headers={
            "X-Netvisor-Authentication-Sender": env["NETVISOR_SENDER"],
            "X-Netvisor-Authentication-CustomerId": env["NETVISOR_CUSTOMER_ID"],
            "X-Netvisor-Authentication-PartnerId": env["NETVISOR_PARTNER_ID"],
            "X-Netvisor-Authentication-Timestamp": stamp,
            "X-Netvisor-Authentication-TransactionId": tx,
            "X-Netvisor-Authentication-MAC": mac,
            "X-Netvisor-Authentication-MACHashCalculationAlgorithm": "SHA256",
            "X-Netvisor-Interface-Language": env["NETVISOR_LANGUAGE"],
            "X-Netvisor-Organisation-ID": env["NETVISOR_ORGANISATION_ID"],
        })
    report("netvisor customerlist (all)", n, n, time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    t = time.perf_counter()
    settings = {"typeform": {"rate_limit_per_second": 0},
                "pipedrive": {"rate_limits": False}}  # measures the emulator, not limits
    with Sandbox(people=args.people, seed=args.seed, in_process=False,
                 settings=settings, startup_timeout=600) as box:
        print(f"sandbox with {args.people} people up in {time.perf_counter() - t:.1f} s: "
              f"{', '.join(box.urls)}")
        env = box.env
        with httpx.Client(timeout=60) as client:
            if "pipedrive" in box.urls:
                bench_floor(client, box.urls["pipedrive"], env["PIPEDRIVE_API_TOKEN"])
                for label in ("cold", "warm"):
                    print(f"-- pipedrive, {label} pass")
                    bench_pipedrive(client, box.urls["pipedrive"], env["PIPEDRIVE_API_TOKEN"])
            if "mailchimp" in box.urls:
                for label in ("cold", "warm"):
                    print(f"-- mailchimp, {label} pass")
                    bench_mailchimp(client, env["MAILCHIMP_BASE_URL"],
                                    env["MAILCHIMP_API_KEY"])
            if "typeform" in box.urls:
                try:
                    bench_typeform(client, env["TYPEFORM_BASE_URL"], env["TYPEFORM_TOKEN"])
                except (KeyError, json.JSONDecodeError, httpx.HTTPError) as exc:
                    print(f"typeform: skipped ({exc!r})")
            if "netvisor" in box.urls:
                try:
                    bench_netvisor(client, env)
                except httpx.HTTPError as exc:
                    print(f"netvisor: skipped ({exc!r})")
            for vendor, url in box.urls.items():
                calls = client.get(url + "/__sandbox/calls").json()
                print(f"{vendor}: {calls['total']} API calls counted by the sandbox")


if __name__ == "__main__":
    main()
