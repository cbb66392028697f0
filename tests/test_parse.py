"""Decoding every documented page shape; bad items skipped and counted, never fatal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from dialnexa_watchdog.ingest.parse import PageError, parse_page
from dialnexa_watchdog.model import StatusClasses, normalise_status, refine_status

DATA = Path(__file__).parent / "data"


def test_seed_example_1_verbatim() -> None:
    page = parse_page((DATA / "seed_example_1.json").read_bytes())
    assert page.invalid == 0 and page.total == 150 and page.total_pages == 8
    [call] = page.calls
    assert (call.id, call.agent_id, call.status) == ("call_abc123", "agt_abc123", "completed")
    assert call.settled_at is not None and call.settled_at - call.created_at == 145.0


def test_seed_example_2_verbatim_other_vocabulary_and_no_total_pages() -> None:
    page = parse_page((DATA / "seed_example_2.json").read_bytes())
    assert page.total == 47 and page.total_pages is None
    assert [c.status for c in page.calls] == ["completed", "no_answer"]
    done, unanswered = page.calls
    assert done.settled_at == done.created_at + 142  # duration_sec, no ended_at
    assert unanswered.settled_at == unanswered.created_at


def test_no_phone_numbers_or_metadata_survive_decoding() -> None:
    page = parse_page((DATA / "seed_example_1.json").read_bytes())
    text = repr(page)
    assert "+91" not in text and "Priya" not in text and "recordings" not in text


def test_bare_array_camel_case_and_end_reasons() -> None:
    body = json.dumps(
        [
            {
                "id": "a",
                "agent_id": "x",
                "status": "ended",
                "end_reason": "user_busy",
                "createdAt": "2024-05-01T14:18:00Z",
                "endedAt": "2024-05-01T14:18:20Z",
                "to_number": "+15550001111",
            },
            {
                "id": "b",
                "agent_id": "x",
                "status": "ended",
                "hangup_reason": "voicemail_detected",
                "createdAt": "2024-05-01T14:18:00Z",
            },
            {
                "id": "c",
                "agent_id": "x",
                "status": "ended",
                "end_reason": "sip_trunk_unreachable",
                "createdAt": "2024-05-01T14:18:00Z",
            },
            {
                "id": "d",
                "agent_id": "x",
                "status": "ended",
                "end_reason": "user_did_not_pick_up",
                "createdAt": "2024-05-01T14:18:00Z",
            },
            {
                "id": "e",
                "agent_id": "x",
                "status": "ongoing",
                "end_reason": "user_busy",
                "createdAt": "2024-05-01T14:18:00Z",
            },
            {
                "id": "f",
                "agent_id": "x",
                "status": "ended",
                "end_reason": "user_hangup",
                "createdAt": "2024-05-01T14:18:00Z",
            },
        ]
    ).encode()
    page = parse_page(body)
    assert page.bare and page.total is None
    assert [c.status for c in page.calls] == [
        "busy",
        "voicemail",
        "failed",
        "no_answer",
        "ongoing",
        "completed",
    ]
    assert page.calls[0].settled_at == page.calls[0].created_at + 20


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("No-Answer", "no_answer"),
        ("in-progress", "in_progress"),
        ("CANCELED", "cancelled"),
        ("did_not_pick", "did_not_pick"),
        ("retry_expired", "retry_expired"),
    ],
)
def test_status_normalisation(raw: str, norm: str) -> None:
    assert normalise_status(raw) == norm


def test_refinement_never_applies_to_pending_or_cancelled() -> None:
    assert refine_status("in_progress", "user_busy") == "in_progress"
    assert refine_status("cancelled", "network_failure") == "cancelled"
    assert refine_status("completed", "something_error") == "failed"


def test_ill_typed_and_missing_items_are_skipped_and_counted() -> None:
    good = {"id": "ok", "agent_id": "a", "status": "failed", "created_at": "2024-05-01T14:18:00Z"}
    items = [
        good,
        {**good, "id": None},
        {**good, "id": "x1", "created_at": 12345},
        {**good, "id": "x2", "status": 7},
        {k: v for k, v in good.items() if k != "agent_id"},
        {**good, "id": "x3", "created_at": "yesterday"},
        "not an object",
    ]
    page = parse_page(json.dumps({"data": items, "meta": {"total": 7}}).encode())
    assert [c.id for c in page.calls] == ["ok"]
    assert page.invalid == 6 and page.items == 7


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML"),
        (b'{"data": [', "not valid JSON"),
        (b"", "empty"),
        (b'{"items": []}', "no 'data' list"),
    ],
)
def test_unusable_bodies_raise_page_error(body: bytes, words: str) -> None:
    with pytest.raises(PageError, match=words):
        parse_page(body)


def _item(call_id: str, agent: str = "a", **extra: str) -> dict[str, str]:
    return {
        "id": call_id,
        "agent_id": agent,
        "status": "failed",
        "created_at": "2024-05-01T14:18:00Z",
        **extra,
    }


def test_bad_text_only_costs_the_items_whose_read_fields_carry_it() -> None:
    items = [
        _item("meta", metadata="@S@"),  # never read: counts
        _item("phone", to_number="@B@"),  # raw bytes that are not UTF-8, never read: counts
        _item("agent", agent="agt_@S@"),
        _item("@S@"),
        _item("reason", end_reason="user_@B@"),
        _item("ok"),
    ]
    body = json.dumps({"data": items, "meta": {"totalPages": 4}}).encode()
    body = body.replace(b"@S@", b"\\ud83d").replace(b"@B@", b"\xff\xfe")
    page = parse_page(body)
    assert [c.id for c in page.calls] == ["meta", "phone", "ok"]
    assert page.invalid == 3 and page.items == 6 and page.total_pages == 4
    assert sorted(page.invalid_reasons) == [
        "invalid unicode in field: $.agent_id",
        "invalid unicode in field: $.end_reason",
        "invalid unicode in field: $.id",
    ]


def test_a_surrogate_pair_is_fine_and_a_lone_one_in_a_bare_array_is_recovered() -> None:
    pair = json.dumps([_item("x", metadata="\U0001f600")]).encode()  # ensure_ascii: a pair
    assert b"\\ud83d\\ude00" in pair and [c.id for c in parse_page(pair).calls] == ["x"]
    lone = json.dumps([_item("y", metadata="@")]).encode().replace(b'"@"', b'"\\udc00"')
    page = parse_page(lone)
    assert page.bare and [c.id for c in page.calls] == ["y"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"data": ' + b"[" * 100_000,
        b'{"data": [\xff\xfe]}',
        b'{"data": "\\ud83d"}',
    ],
    ids=["deep", "deep-data", "raw-bytes", "surrogate-data"],
)
def test_what_no_decoder_accepts_is_still_a_page_error(body: bytes) -> None:
    with pytest.raises(PageError):
        parse_page(body)


# DialNexa's webhook reference: "hangup" = the call never connected; hangup_reason says why.
HANGUP_REASONS = {
    "user_did_not_pick_up": "no_answer",
    "user_busy": "busy",
    "voicemail_detected": "voicemail",
    "user_unreachable": "no_answer",
    "unallocated_phone_number": "failed",
    "network_failure": "failed",
    "sip_auth_failed": "failed",
    "sip_trunk_unreachable": "failed",
    "unknown": "hangup",
}


def _hangup_item(i: int, status: str, field: str | None, reason: str | None) -> dict[str, object]:
    item: dict[str, object] = {
        "id": f"h{i}",
        "agent_id": "agt_webhook",
        "status": status,
        "created_at": "2024-05-01T14:18:00Z",
        "ended_at": "2024-05-01T14:18:31Z",
    }
    if field is not None:
        item[field] = reason
    return item


@pytest.mark.parametrize(
    ("status", "field", "spell"),
    [
        ("hangup", "hangup_reason", str),  # the webhook reference, snake_case
        ("HANGUP", "hangupReason", lambda r: r.replace("_", "-").upper()),  # camel, hyphens
        ("hang-up", "disconnection_reason", str),  # the deprecated alias
        ("hangup", "end_reason", lambda r: r.replace("_", "-")),
    ],
)
def test_hangup_status_with_its_reasons_in_both_vocabularies(
    status: str, field: str, spell: Callable[[str], str]
) -> None:
    items = [
        _hangup_item(i, status, field, spell(reason)) for i, reason in enumerate(HANGUP_REASONS)
    ]
    items.append(_hangup_item(99, status, None, None))  # a bare hangup: no reason at all
    items.append(_hangup_item(98, "completed", field, "user_hangup"))  # who hung up first
    page = parse_page(json.dumps({"data": items, "meta": {"total": len(items)}}).encode())
    assert page.invalid == 0
    got = [c.status for c in page.calls]
    assert got == [*HANGUP_REASONS.values(), "hangup", "completed"]
    classes = StatusClasses()
    # a hangup counts: settled, in the denominator, towards no outcome (was "unknown")
    assert [classes.classify(s) for s in got] == got
    assert "hangup" in classes.denominator and not any(
        "hangup" in statuses for statuses in classes.outcomes.values()
    )
    assert all(c.settled_at == c.created_at + 31 for c in page.calls)
