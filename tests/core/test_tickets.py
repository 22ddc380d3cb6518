import pytest

from pulzar.core.errors import Forbidden, Unauthorized
from pulzar.core.tickets import (
    CLOCK_SKEW,
    WriteTicket,
    sign_request,
    sign_ticket,
    verify_request,
    verify_ticket,
)

NOW = 1_800_000_000.0


def ticket(**changes):
    fields = dict(key="/a", version=7, nodes=("n1",), urls=("http://v",), expires_at=NOW + 60)
    fields.update(changes)
    return WriteTicket(**fields)


def test_signed_ticket_round_trips():
    original = ticket(ttl=86400.0, condition="*", created=NOW - 5)
    assert verify_ticket("secret", sign_ticket("secret", original), NOW) == original


def test_missing_ticket_is_unauthorized():
    with pytest.raises(Unauthorized):
        verify_ticket("secret", None, NOW)


def test_ticket_signed_with_another_secret_is_refused():
    with pytest.raises(Forbidden, match="signature"):
        verify_ticket("secret", sign_ticket("other", ticket()), NOW)


def test_altered_ticket_is_refused():
    token = sign_ticket("secret", ticket())
    body, sig = token.split(".")
    forged = sign_ticket("secret", ticket(key="/b")).split(".")[0]
    with pytest.raises(Forbidden):
        verify_ticket("secret", f"{forged}.{sig}", NOW)
    with pytest.raises(Forbidden):
        verify_ticket("secret", body + "x." + sig, NOW)
    with pytest.raises(Forbidden):
        verify_ticket("secret", "garbage", NOW)


def test_expired_ticket_is_refused_after_the_skew_margin():
    token = sign_ticket("secret", ticket(expires_at=NOW))
    assert verify_ticket("secret", token, NOW + CLOCK_SKEW - 1)
    with pytest.raises(Forbidden, match="expired"):
        verify_ticket("secret", token, NOW + CLOCK_SKEW + 1)


def test_request_signature_covers_method_path_and_time():
    header = sign_request("s", "POST", "/internal/commit", NOW)
    verify_request("s", header, "POST", "/internal/commit", NOW + 1)
    for args in (
        ("s", header, "GET", "/internal/commit", NOW),
        ("s", header, "POST", "/internal/lookup", NOW),
        ("t", header, "POST", "/internal/commit", NOW),
        ("s", header, "POST", "/internal/commit", NOW + 3600),
        ("s", "nonsense", "POST", "/internal/commit", NOW),
    ):
        with pytest.raises(Forbidden):
            verify_request(*args)
    with pytest.raises(Unauthorized):
        verify_request("s", None, "POST", "/internal/commit", NOW)


def test_a_checked_ticket_is_handed_on_as_the_token_it_came_in():
    token = sign_ticket("secret", ticket(nodes=("n1", "n2"), urls=("http://v1", "http://v2")))
    checked = verify_ticket("secret", token, NOW)
    assert checked.signed("secret") == token
    assert verify_ticket("secret", checked.signed("secret"), NOW) == checked
    # One made here (not read from a token) is signed when handed on.
    assert verify_ticket("secret", ticket().signed("secret"), NOW) == ticket()


@pytest.mark.parametrize("token", ["é.é", "a.b", "!!.??", "YQ.+/+/", "x"])
def test_a_ticket_that_is_not_base64url_is_malformed(token):
    with pytest.raises(Forbidden):
        verify_ticket("secret", token, NOW)
