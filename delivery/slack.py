"""Posting the ops staff's alerts and digest to Slack (HUB_SLACK_TOKEN, HUB_SLACK_CHANNEL).

The client is dagster-slack's SlackResource (a slack_sdk WebClient underneath), the one
the Dagster ecosystem maintains, so the token is handled the way Dagster users expect.
The token is a secret: it reaches the client and nothing else, never a log line or
an error kept in the outbox. A message carries what the e-mail carries (request ids,
systems, masked values), as plain text cut to Slack's recommended length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hub.settings import Settings

# Slack truncates a message's text beyond 40 000 characters and advises 4 000.
MAX_TEXT = 3900
TIMEOUT_SECONDS = 30


class Poster(Protocol):
    def post(self, channel: str, text: str) -> None:
        """Post the text to the channel; raise on any refusal."""


class SlackNotConfigured(RuntimeError):
    """HUB_SLACK_TOKEN or HUB_SLACK_CHANNEL is missing; the message names it."""


class SlackRefused(RuntimeError):
    """Slack (or what stands in its place) did not take the message; ``down`` when the
    service, not this message, is the cause (5xx, 429, no answer)."""

    def __init__(self, message: str, *, down: bool) -> None:
        super().__init__(message)
        self.down = down


def fit(subject: str, text: str) -> str:
    """The message: the subject as its first line, the body after, cut to MAX_TEXT."""
    message = f"*{subject}*\n{text.strip()}"
    if len(message) <= MAX_TEXT:
        return message
    return message[:MAX_TEXT - 40].rstrip() + "\n… (cut; the e-mail has all of it)"


@dataclass(frozen=True)
class SlackPoster:
    token: str
    api_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackPoster:
        if not settings.slack_configured:
            raise SlackNotConfigured("HUB_SLACK_TOKEN and HUB_SLACK_CHANNEL must both be set")
        return cls(settings.slack_token.get_secret_value(), settings.slack_api_url)

    def __repr__(self) -> str:  # the dataclass default would print the token
        return f"SlackPoster(api_url={self.api_url!r})"

    def post(self, channel: str, text: str) -> None:
        from dagster_slack import SlackResource  # loads Dagster: only when Slack is used
        from slack_sdk.errors import SlackApiError

        client = SlackResource(token=self.token).get_client()
        client.base_url = self.api_url.rstrip("/") + "/"
        client.timeout = TIMEOUT_SECONDS
        try:
            client.chat_postMessage(channel=channel, text=text, unfurl_links=False,
                                    unfurl_media=False)
        except SlackApiError as exc:
            status = exc.response.status_code
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = data.get("error") or "no error code in the answer"
            raise SlackRefused(f"Slack answered HTTP {status}: {error}",
                               down=status >= 500 or status == 429) from None
        except OSError as exc:  # refused, timed out, DNS, TLS (urllib wraps them)
            raise SlackRefused(f"Slack unreachable: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}",
                               down=True) from None
