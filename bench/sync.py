"""Benchmark: full sync of every system against the sandbox, next to a floor.

    python bench/sync.py [--people 25000] [--systems pipedrive,mailchimp,...]

The sandbox runs in a child process (so its CPU does not share our GIL). Per system:

1. a warm-up sync through the connector, recording the HTTP requests it sends;
2. the **floor**: a bare httpx loop sending exactly those requests and parsing the
   bodies with the fastest safe parser, and nothing else: orjson for JSON, lxml with
   entity resolution, DTDs, network access and huge trees off for Netvisor's XML
   (Mailchimp, whose connector talks through the SDK, gets an equivalent hand-written
   loop over the same pages). The ratio therefore measures our own work: validating,
   mapping to records, retries and pacing;
3. the measured full sync through the connector (records/s, API calls); floor and
   full sync are run three times in turn and each is its fastest run, so a burst of
   load on a shared machine does not decide the ratio;
4. 1% of the records changed through the vendor API (where the emulator lets us),
   then an incremental sync from the full sync's cursor, as a share of the full.

Each system's line ends with the aim (full sync <= 1.3x its floor) and PASS or MISS.
Peak RSS is the process high-water mark after each step (it only grows), so a flat
number across systems and across --people values is what "memory flat in N"
looks like. Floor and sync both run with the garbage collector as a sync asset runs
with it (connectors/bulk.py). Not a test: the figures go into the issue's closing note.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
from lxml import etree  # noqa: E402

from connectors import registry  # noqa: E402

SYSTEMS = registry.names()  # the declared systems (connectors/registry.py)
AIM = 1.3  # a full sync within 1.3x of fetching and parsing the same pages
# Floor and full sync are each run this many times, in turn, and the fastest of each
# kept: on a shared two-core machine one run of either can be twice its best.
ROUNDS = 3
# The safe XML floor: what the Netvisor connector may at best do (no entities, no DTD,
# no network, no unbounded trees).
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False)


def parse_floor(system: str, body: bytes) -> object:
    """Parse a body the fastest safe way: the floor's share of real work."""
    if system == "netvisor":
        return etree.fromstring(body, SAFE_XML)
    return orjson.loads(body)


def verdict(ratio: float) -> str:
    return f"aim {AIM} {'PASS' if ratio <= AIM else 'MISS'}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Result:
    system: str
    records: int = 0
    seconds: float = 0.0
    api_calls: int = 0
    floor_seconds: float | None = None
    floor_calls: int = 0
    incr_records: int = 0
    incr_seconds: float | None = None
    incr_calls: int = 0
    changed: int = 0
    rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_sync(conn: Any, since: str | None) -> tuple[int, float, int, str | None]:
    calls_before = conn.api_calls
    start = time.perf_counter()
    n = 0
    cursor = since
    for page in conn.sync(since):
        n += len(page.records)
        cursor = page.cursor
    return n, time.perf_counter() - start, conn.api_calls - calls_before, cursor


# ------------------------------------------------------------------------- floors


def capture_requests(conn: Any) -> list[tuple[str, str, dict[str, str], bytes]] | None:
    """Hook the connector's httpx client (``conn.http.client``) to record requests."""
    client = getattr(getattr(conn, "http", None), "client", None)
    if not isinstance(client, httpx.Client):
        return None
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def hook(request: httpx.Request) -> None:
        seen.append((request.method, str(request.url), dict(request.headers),
                     request.content))

    client.event_hooks["request"].append(hook)
    return seen


def replay_floor(system: str, requests_: list[tuple[str, str, dict[str, str], bytes]]
                 ) -> tuple[float, str]:
    with httpx.Client(timeout=60) as client:
        start = time.perf_counter()
        bad = 0
        for method, url, headers, content in requests_:
            for _attempt in range(20):
                response = client.request(method, url, headers=headers,
                                          content=content or None)
                if response.status_code != 429:
                    if response.status_code < 400:
                        parse_floor(system, response.content)
                    break
                # the vendor's own rate limit is part of the floor (Typeform: 2/s)
                time.sleep(float(response.headers.get("retry-after") or 0.5))
            if response.status_code >= 400:
                bad += 1
        elapsed = time.perf_counter() - start
    return elapsed, (f"{bad} replayed requests were refused (signed/nonce?)" if bad else "")


def mailchimp_floor(env: dict[str, str], since: str | None = None) -> tuple[float, int]:
    auth = ("user", env["MAILCHIMP_API_KEY"])
    calls = 0
    with httpx.Client(base_url=env["MAILCHIMP_BASE_URL"], auth=auth, timeout=60) as client:
        start = time.perf_counter()
        lists = client.get("/lists", params={"count": 1000, "fields": "lists.id,total_items"})
        calls += 1
        for audience in orjson.loads(lists.content)["lists"]:
            offset = 0
            while True:
                params: dict[str, Any] = {"count": 1000, "offset": offset,
                                          "exclude_fields": "members._links,_links"}
                if since:
                    params["since_last_changed"] = since
                body = orjson.loads(
                    client.get(f"/lists/{audience['id']}/members", params=params).content)
                calls += 1
                offset += len(body["members"])
                if not body["members"] or offset >= body["total_items"]:
                    break
        return time.perf_counter() - start, calls


# ---------------------------------------------------------------- 1% changes


def paced(client: httpx.Client, method: str, url: str, **kwargs: Any) -> None:
    """One change, waiting out the emulator's rate limit (429 + Retry-After)."""
    for _attempt in range(50):
        response = client.request(method, url, **kwargs)
        if response.status_code != 429:
            response.raise_for_status()
            return
        time.sleep(float(response.headers.get("retry-after") or 0.5))
    response.raise_for_status()


def change_pipedrive(env: dict[str, str], ids: list[str]) -> int:
    headers = {"x-api-token": env["PIPEDRIVE_API_TOKEN"]}
    with httpx.Client(base_url=env["PIPEDRIVE_BASE_URL"], headers=headers, timeout=60) as c:
        for pid in ids:
            paced(c, "PATCH", f"/api/v2/persons/{pid}", json={"label_ids": [1]})
    return len(ids)


def change_mailchimp(env: dict[str, str], ids: list[str]) -> int:
    auth = ("user", env["MAILCHIMP_API_KEY"])
    with httpx.Client(base_url=env["MAILCHIMP_BASE_URL"], auth=auth, timeout=60) as c:
        for rid in ids:
            list_id, _, member = rid.partition(":")
            paced(c, "PATCH", f"/lists/{list_id}/members/{member}",
                  json={"merge_fields": {"BENCH": "1"}, "vip": True})
    return len(ids)


CHANGERS: dict[str, Callable[[dict[str, str], list[str]], int]] = {
    "pipedrive": change_pipedrive,
    "mailchimp": change_mailchimp,
}


# ------------------------------------------------------------------------- main


def bench_system(system: str, env: dict[str, str]) -> Result | str:
    from connectors.bulk import bulk_reading
    from connectors.errors import ConfigError
    from connectors.registry import build_connector

    try:
        conn = build_connector(system)
    except (KeyError, ImportError, AttributeError) as exc:
        return f"{system}: skipped, no connector yet ({type(exc).__name__})"
    except ConfigError as exc:
        return f"{system}: skipped, {exc}"
    result = Result(system)
    with conn, bulk_reading():  # the collector as a sync asset has it, floor included
        captured = capture_requests(conn)
        ids: list[str] = []
        warm_n = 0
        for page in conn.sync(None):  # warm-up, also collects the ids to change
            warm_n += len(page.records)
            ids.extend(r.record_id for r in page.records)
        requests_ = list(captured or ())
        if captured is not None:
            captured.clear()
            conn.http.client.event_hooks["request"].clear()
        if system != "mailchimp" and captured is None:
            result.notes.append("no floor: connector does not expose an httpx client")
        cursor = None
        for _round in range(ROUNDS):  # floor and sync in turn, the best of each kept
            floor: float | None = None
            if system == "mailchimp":
                floor, result.floor_calls = mailchimp_floor(env)
            elif captured is not None:
                floor, note = replay_floor(system, requests_)
                result.floor_calls = len(requests_)
                if note and note not in result.notes:
                    result.notes.append(note)
            if floor is not None:
                result.floor_seconds = min(floor, result.floor_seconds or floor)
            n, secs, calls, cursor = run_sync(conn, None)
            if not result.seconds or secs < result.seconds:
                result.records, result.seconds, result.api_calls = n, secs, calls
        result.rss_mb = peak_rss_mb()
        changer = CHANGERS.get(system)
        if changer is not None and ids:
            sample = random.Random(7).sample(ids, max(1, len(ids) // 100))
            result.changed = changer(env, sample)
        else:
            result.notes.append("incremental with no changes (no change hook for this "
                                "emulator)")
        n, secs, calls, _ = run_sync(conn, cursor)
        result.incr_records, result.incr_seconds, result.incr_calls = n, secs, calls
        result.rss_mb = peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]

    from sandbox.server import Sandbox

    print(f"starting the sandbox with {args.people:,} people in a child process "
          f"(the vendors' own limits on; floor and sync each the best of {ROUNDS}) ...",
          flush=True)
    t0 = time.perf_counter()
    box = Sandbox(people=args.people, seed=args.seed, vendors=tuple(systems), in_process=False,
                  startup_timeout=900)
    with box:
        print(f"sandbox up in {time.perf_counter() - t0:.1f}s: {', '.join(box.urls)}")
        os.environ.update(box.env)
        results: list[Result] = []
        for system in systems:
            if system not in box.urls:
                print(f"{system}: skipped, the sandbox has no emulator for it yet")
                continue
            outcome = bench_system(system, box.env)
            if isinstance(outcome, str):
                print(outcome)
                continue
            results.append(outcome)
            report(outcome)
        if results:
            total(results)


def report(r: Result) -> None:
    rate = r.records / r.seconds if r.seconds else 0
    line = (f"{r.system:10s} full: {r.records:8,d} records in {r.seconds:6.2f}s "
            f"= {rate:9,.0f}/s, {r.api_calls:5d} API calls")
    if r.floor_seconds:
        ratio = r.seconds / r.floor_seconds
        line += (f"; floor {r.floor_seconds:6.2f}s ({r.floor_calls} calls), "
                 f"ratio {ratio:4.2f} ({verdict(ratio)})")
    print(line)
    if r.incr_seconds is not None:
        share = r.incr_seconds / r.seconds if r.seconds else 0
        print(f"{'':10s} incremental after {r.changed:,d} changed: {r.incr_records:,d} records, "
              f"{r.incr_calls} API calls, {r.incr_seconds:.2f}s = {share:.1%} of the full sync")
    print(f"{'':10s} peak RSS so far {r.rss_mb:.0f} MB")
    for note in r.notes:
        print(f"{'':10s} note: {note}")


def total(results: list[Result]) -> None:
    records = sum(r.records for r in results)
    secs = sum(r.seconds for r in results)
    floor = sum(r.floor_seconds or 0 for r in results if r.floor_seconds)
    floor_secs = sum(r.seconds for r in results if r.floor_seconds)
    calls = sum(r.api_calls for r in results)
    incr = sum(r.incr_seconds or 0 for r in results)
    line = (f"{'total':10s} full: {records:8,d} records in {secs:6.2f}s = "
            f"{records / secs if secs else 0:9,.0f}/s, {calls} API calls")
    if floor:
        line += f"; ratio to floor {floor_secs / floor:4.2f} ({verdict(floor_secs / floor)})"
    print(line)
    print(f"{'':10s} incremental: {incr:.2f}s = {incr / secs if secs else 0:.1%} of the full; "
          f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
