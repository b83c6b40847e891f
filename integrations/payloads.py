"""Decode a stored delivery's body into the object its provider meant, from its kept headers.

GitHub may send `payload=<json>` form-encoded, Slack interactions always do, and Slack slash
commands are plain form fields; everything else is a JSON object."""

from __future__ import annotations

from collections.abc import Mapping

from integrations.base import load_object, parse_form


def decode(headers: Mapping[str, str], body: bytes) -> dict[str, object]:
    """The payload as a dict; Malformed if the body is not what its content type says."""
    media = headers.get("content-type", "application/json").partition(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return load_object(body)
    fields = parse_form(body)
    if "payload" in fields:
        return load_object(fields["payload"], "payload field")
    return dict(fields)
