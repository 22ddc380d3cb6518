import pytest

from pulzar.core.errors import InvalidKey
from pulzar.core.keys import MAX_KEY_BYTES, parse_key, parse_prefix, validate_key


def test_key_is_normalised_to_start_with_a_slash():
    assert parse_key("a/b.txt") == "/a/b.txt"
    assert parse_key("/a/b.txt") == "/a/b.txt"


def test_percent_encoding_is_decoded_once_so_encoded_slash_is_a_slash():
    assert parse_key("a%2Fb") == "/a/b"
    assert parse_key("a%252Fb") == "/a%2Fb"
    assert parse_key("caf%C3%A9") == "/café"


@pytest.mark.parametrize(
    "raw",
    ["", "/", "a//b", "a/", "./a", "a/./b", "a/..", "..", "%2e%2e/x", "a%2F%2Fb",
     "a%00b", "a%0ab", "a%7fb", "a%c2%85b", "%ff"],
)
def test_invalid_keys_are_refused(raw):
    with pytest.raises(InvalidKey):
        parse_key(raw)


def test_key_of_1024_bytes_is_accepted_and_1025_refused():
    assert validate_key("/" + "a" * (MAX_KEY_BYTES - 1))
    with pytest.raises(InvalidKey, match="1024"):
        validate_key("/" + "a" * MAX_KEY_BYTES)


def test_key_error_says_which_rule_was_broken():
    with pytest.raises(InvalidKey, match=r"'\.\.' segment"):
        parse_key("a/../b")
    with pytest.raises(InvalidKey, match="control character"):
        parse_key("a%01")


def test_prefix_may_be_empty_and_lists_everything():
    assert parse_prefix("") == "/"
    assert parse_prefix("conf") == "/conf"
    with pytest.raises(InvalidKey):
        parse_prefix("a%00")
