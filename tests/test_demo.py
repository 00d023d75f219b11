"""`make demo`, the README's main job, end to end from an empty directory."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # end to end through real processes: scheduled first


def test_the_demo_runs_every_request_kind_and_proves_it_at_the_vendors(tmp_path: Path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "DAGSTER_", "PIPEDRIVE_", "MAILCHIMP_", "TYPEFORM_",
                                "NETVISOR_"))}
    done = subprocess.run([sys.executable, "-m", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert "Demo passed" in out and "FAIL" not in out
    for promise in ("access: request completed", "opt_out: request completed",
                    "erasure: request partially_completed", "held until 2032-12-31",
                    "mailchimp: a***@example.fi is in no audience",
                    "pipedrive: marketing status of m***@example.fi is unsubscribed",
                    "owner-only, 5 systems", "hash chain intact",
                    # the systems without an API: the share read back, the archive confirmed
                    "seeding the network drive: 4 office documents",
                    "network drive: no document names a***@example.fi any more (read back)",
                    "Paper contracts (locked cabinet), by hand by",
                    "paper archive: confirmed by demo-operator",
                    "the retention sweep, a dry run", "nothing filed (file_requests is off)",
                    "rectification: request completed",
                    "pipedrive: e***@example.fi now carries the corrected name",
                    # a colleague's record reached through the shared phone is reviewed
                    "is shared by several people", "the operator excluded",
                    "the colleague with the same phone, untouched",
                    "erasure: request completed"):
        assert promise in out
    # Nothing personal on the terminal; the sandbox is gone.
    assert "aino.virtanen" not in out.lower() and "virtanen" not in done.stderr.lower()
    assert "korhonen" not in out.lower()  # the corrected name is personal data too
    assert (tmp_path / ".hub" / "demo" / "hub.db").exists()
    urls = re.findall(r"^    (?:pipedrive|mailchimp|typeform|netvisor) +(http://\S+)$", out,
                      re.MULTILINE)
    assert len(urls) == 4
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/__sandbox/calls", timeout=5)
