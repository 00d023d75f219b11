"""Settings: a stray `.hub/sandbox.env` never puts a deployment on a public key.

Each test runs in an empty working directory with no HUB_ variable set, writes the
files an operator (or a leftover sandbox) would leave there, and loads the settings
the way every command does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.settings import SANDBOX_SECRET, Mode, SettingsError, load_settings

STRONG = "k3Y-" + "aB9xQ2mZ7pL0vN4tR8sW1uE6yH5jC3dF"


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.upper().startswith("HUB_")]:
        monkeypatch.delenv(key)
    return tmp_path


def write(path: str, **values: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(f"HUB_{k.upper()}={v}\n" for k, v in values.items()))


def secret_error() -> str:
    with pytest.raises(SettingsError) as caught:
        _ = load_settings().secret_bytes
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_leftover_sandbox_file_does_not_switch_to_sandbox_mode():
    """Found: the sandbox's file (HUB_MODE=sandbox) put the hub on the built-in key."""
    write(".hub/sandbox.env", mode="sandbox")
    settings = load_settings()
    assert settings.mode == Mode.PRODUCTION
    message = secret_error()
    assert "HUB_SECRET is not set" in message
    assert ".hub/sandbox.env" in message and "HUB_MODE" in message


def test_built_in_key_from_the_sandbox_file_is_refused_and_the_file_named():
    write(".hub/sandbox.env", mode="sandbox", secret=SANDBOX_SECRET)
    message = secret_error()
    assert "built-in" in message and ".hub/sandbox.env" in message
    assert SANDBOX_SECRET not in message


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_built_in_key_is_refused_in_production_wherever_it_comes_from(source, monkeypatch):
    if source == "environment":
        monkeypatch.setenv("HUB_SECRET", SANDBOX_SECRET)
    else:
        write(".env", secret=SANDBOX_SECRET)
    message = secret_error()
    assert "built-in" in message and source in message


@pytest.mark.parametrize("weak", [
    " " * 40,                       # 40 spaces (quoted so the file keeps them)
    "a" * 48,                       # one character repeated
    "ab" * 24,                      # two characters repeated
    "  short-but-padded-with-spaces         ",
    "x" * 31,
])
def test_weak_secret_from_env_file_is_refused_naming_the_file(weak):
    Path(".env").write_text(f'HUB_SECRET="{weak}"\n')
    message = secret_error()
    assert "HUB_SECRET" in message and ".env" in message and "32" in message
    assert weak.strip() not in message or not weak.strip()


def test_weak_secret_from_the_environment_names_the_environment(monkeypatch):
    monkeypatch.setenv("HUB_SECRET", " " * 32)
    assert "environment" in secret_error()


def test_strong_secret_is_used_as_given(monkeypatch):
    monkeypatch.setenv("HUB_SECRET", STRONG)
    assert load_settings().secret_bytes == STRONG.encode()


def test_environment_wins_over_both_files(monkeypatch):
    write(".hub/sandbox.env", secret=SANDBOX_SECRET)
    write(".env", secret="a" * 40)
    monkeypatch.setenv("HUB_SECRET", STRONG)
    assert load_settings().secret_bytes == STRONG.encode()


@pytest.mark.parametrize("where", ["environment", ".env", "explicit"])
def test_sandbox_mode_from_environment_env_file_or_explicit_config_is_honoured(
        where, monkeypatch):
    if where == "environment":
        monkeypatch.setenv("HUB_MODE", "sandbox")
        settings = load_settings()
    elif where == ".env":
        write(".env", mode="sandbox")
        settings = load_settings()
    else:
        settings = load_settings(mode="sandbox")
    assert settings.mode == Mode.SANDBOX
    assert settings.secret_bytes == SANDBOX_SECRET.encode()


@pytest.mark.parametrize(("name", "value", "named"), [
    ("HUB_TIMEZONE", "Mars/Base", "HUB_TIMEZONE"),
    ("HUB_TIMEZONE", "../../etc/passwd", "HUB_TIMEZONE"),
    ("HUB_MODE", "prod", "HUB_MODE"),
    ("HUB_DUE_SOON_DAYS", "soon", "HUB_DUE_SOON_DAYS"),
    ("HUB_STUCK_AFTER_MINUTES", "0", "HUB_STUCK_AFTER_MINUTES"),
    ("HUB_DB_CONNECT_TIMEOUT", "-1", "HUB_DB_CONNECT_TIMEOUT"),
])
def test_invalid_setting_is_one_line_naming_the_variable(name, value, named, monkeypatch):
    """Found: pydantic's 4-line dump, and a bad time zone only failed deep in a command."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and named in message
