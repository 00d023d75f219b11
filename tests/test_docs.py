"""The documentation stands on its own in a fresh clone.

- Every relative link in README.md and in docs/**/*.md points at a file (or a folder)
  that a clone of the repository has: a tracked file, not one lying in a working tree.
- No tracked file names the folder of design notes outside the repository that the
  README once pointed at: a clone does not have it.
- Every system the connector registry knows has its page in docs/vendors/.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

from connectors.registry import available

ROOT = Path(__file__).resolve().parents[1]
# Built from parts, so this file does not name what it looks for.
OUTSIDE = ("." * 2 + "/shared", "/work" + "/shared")
# An inline link or image: [text](target) or [text](target "title"); the target ends
# at the first space or closing parenthesis.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A reference definition: [label]: target
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@cache
def tracked() -> frozenset[str]:
    """The repository's files as a clone has them (git ls-files), POSIX paths."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell what a clone holds")
    return frozenset(p for p in out.decode("utf-8").split("\0") if p)


def tracked_dirs() -> frozenset[str]:
    dirs = set()
    for path in tracked():
        parts = PurePosixPath(path).parts
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(dirs)


def documents() -> list[str]:
    docs = sorted(p for p in tracked() if p.startswith("docs/") and p.endswith(".md"))
    return ["README.md", *docs]


def links(text: str) -> list[str]:
    """Link targets in Markdown text, code blocks and code spans left out."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def resolve(document: str, target: str) -> str | None:
    """The repository path a relative link target names; None for an external or
    same-page link. A path that leaves the repository resolves to a '../' path."""
    if SCHEME.match(target) or target.startswith(("#", "//")):
        return None
    path = target.split("#", 1)[0].split("?", 1)[0]
    if not path:
        return None
    base = PurePosixPath(document).parent
    joined = PurePosixPath("/" + path) if path.startswith("/") else base / path
    parts: list[str] = []
    for part in joined.parts:
        if part in ("", ".", "/"):
            continue
        if part == "..":
            if not parts:
                return path  # leaves the repository: never a tracked path
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def broken_links(document: str, text: str) -> list[str]:
    files, dirs = tracked(), tracked_dirs()
    out = []
    for target in links(text):
        path = resolve(document, target)
        if path is not None and path not in files and path not in dirs:
            out.append(f"{document}: {target}")
    return out


def test_every_relative_link_resolves_in_a_clone() -> None:
    assert "README.md" in tracked()
    broken = [b for doc in documents()
              for b in broken_links(doc, (ROOT / doc).read_text(encoding="utf-8"))]
    assert not broken, "links to files a clone does not have:\n" + "\n".join(broken)


def test_the_docs_folder_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = {resolve("README.md", t) for t in links(readme)}
    for page in ("docs/architecture.md", "docs/obligations.md", "docs/adding-a-system.md"):
        assert page in tracked(), f"{page} is missing"
        assert page in named, f"README.md does not link to {page}"


def test_no_file_names_a_folder_outside_the_repository() -> None:
    found = []
    for path in sorted(tracked()):
        try:
            data = (ROOT / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue  # deleted in the working tree, or a submodule
        for needle in OUTSIDE:
            for lineno, line in enumerate(data.splitlines(), start=1):
                if needle.encode() in line:
                    found.append(f"{path}:{lineno}: names {needle}")
    assert not found, "a clone has no such folder:\n" + "\n".join(found)


@pytest.mark.parametrize("system", available())
def test_every_system_has_a_vendor_page(system: str) -> None:
    page = f"docs/vendors/{system}.md"
    assert page in tracked(), f"{system} is in connectors/registry.py but {page} is missing"


# ------------------------------------------------------------ the checks themselves


def test_the_link_check_can_fail() -> None:
    text = ("[ok](sandbox/README.md) [gone](docs/nowhere.md) [out](../outside/DESIGN.md) "
            "[web](https://example.fi/x) [here](#rules) `[code](no/such.md)`\n"
            "```\n[fenced](no/such.md)\n```\n[ref]: docs/also-missing.md\n")
    assert broken_links("README.md", text) == [
        "README.md: docs/nowhere.md", "README.md: ../outside/DESIGN.md",
        "README.md: docs/also-missing.md"]
    assert resolve("docs/vendors/pipedrive.md", "../architecture.md#rules") == \
        "docs/architecture.md"
    assert resolve("docs/vendors/pipedrive.md", "../../../x.md") == "../../../x.md"
