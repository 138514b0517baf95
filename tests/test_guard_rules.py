"""The guard's rules for PII and secrets: each kind found with its exact span, checksums,
the effect of cue words on scores, hard negatives, redaction, hostile input, and precision
and recall on the labelled synthetic sets (`feldspar.guard.synthetic`)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from feldspar.guard.pii import Cues, find_pii, iban_valid, luhn_valid, select, windows
from feldspar.guard.redaction import redact
from feldspar.guard.secrets import entropy, find_secrets, placeholder, secret_name
from feldspar.guard.synthetic import (
    iban_check_digits,
    insee_key,
    luhn_digit,
    make_pii_set,
    make_secret_set,
    tally,
)
from feldspar.guard.verdicts import Span

THRESHOLD = 0.5
Finder = Callable[[str], list[Span]]


def found(text: str, finder: Finder = find_pii) -> list[tuple[str, str]]:
    """(matched text, kind) of the spans scoring at least the threshold."""
    return [(text[s.start:s.end], s.kind) for s in finder(text) if s.score >= THRESHOLD]


def score_of(text: str, value: str, finder: Finder = find_pii) -> float:
    """The score of the span that covers exactly `value` in `text` (0 when none does)."""
    start = text.index(value)
    return max((s.score for s in finder(text) if (s.start, s.end) == (start, start + len(value))),
               default=0.0)


# --- PII: each kind, spans exact ------------------------------------------------------------

@pytest.mark.parametrize(("text", "value", "kind"), [
    ("Write to jane.doe@example.com today", "jane.doe@example.com", "email"),
    ("JOHN.SMITH+SHOP@MAIL.EXAMPLE.CO.UK.", "JOHN.SMITH+SHOP@MAIL.EXAMPLE.CO.UK", "email"),
    ("<a.b-c@sub.domain.io>", "a.b-c@sub.domain.io", "email"),
    ("mailto:support@acme-corp.com", "support@acme-corp.com", "email"),
    ("Call +44 20 7946 0958 now", "+44 20 7946 0958", "phone"),
    ("Tel: +1 (415) 555-0132 ext. 12", "+1 (415) 555-0132", "phone"),
    ("reach me on (415) 555-0132.", "(415) 555-0132", "phone"),
    ("Phone: 415.555.0132", "415.555.0132", "phone"),
    ("Appelez le 06 12 34 56 78 !", "06 12 34 56 78", "phone"),
    ("+33 (0)6 12 34 56 78", "+33 (0)6 12 34 56 78", "phone"),
    ("mobile 07700 900123", "07700 900123", "phone"),
    ("Telefon: 030 12345678", "030 12345678", "phone"),
    ("Tel. (089) 1234567", "(089) 1234567", "phone"),
    ("IBAN DE89 3704 0044 0532 0130 00, thanks", "DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432", "GB82WEST12345698765432", "iban"),
    ("FR76 3000 6000 0112 3456 7890 189 BIC AGRIFRPP", "FR76 3000 6000 0112 3456 7890 189",
     "iban"),
    ("card 4111 1111 1111 1111 exp 08/27", "4111 1111 1111 1111", "credit_card"),
    ("Amex 3782 822463 10005", "3782 822463 10005", "credit_card"),
    ("6011-0009-9013-9424", "6011-0009-9013-9424", "credit_card"),
    ("paid with 5555555555554444", "5555555555554444", "credit_card"),
    ("SSN: 219-09-9998", "219-09-9998", "us_ssn"),
    ("my social security number is 536 22 1234", "536 22 1234", "us_ssn"),
    ("NI number AB 12 34 56 C", "AB 12 34 56 C", "uk_nino"),
    ("Numéro de sécu : 1 85 05 78 006 084 91", "1 85 05 78 006 084 91", "fr_insee"),
    ("login from 203.0.113.7:8080", "203.0.113.7", "ip_address"),
    ("host 2001:db8:85a3::8a2e:370:7334.", "2001:db8:85a3::8a2e:370:7334", "ip_address"),
    ("ping fe80::1", "fe80::1", "ip_address"),
    ("Date of birth: 12/03/1985", "12/03/1985", "date_of_birth"),
    ("born on March 12, 1985 in Leeds", "March 12, 1985", "date_of_birth"),
    ("DOB 1985-03-12", "1985-03-12", "date_of_birth"),
    ("née le 3 mars 1962", "3 mars 1962", "date_of_birth"),
    ("Geburtsdatum: 12. März 1985", "12. März 1985", "date_of_birth"),
])
def test_pii_kind_and_exact_span(text: str, value: str, kind: str) -> None:
    assert (value, kind) in found(text)


def test_pii_spans_at_both_ends_and_sorted() -> None:
    text = "a@b.fr and 4111 1111 1111 1111 or +44 20 7946 0958"
    assert found(text) == [("a@b.fr", "email"), ("4111 1111 1111 1111", "credit_card"),
                           ("+44 20 7946 0958", "phone")]


def test_offsets_are_python_string_offsets() -> None:
    text = "😀 é — écrivez à jane@exemple.fr"
    [span] = find_pii(text)
    assert text[span.start:span.end] == "jane@exemple.fr"


# --- PII: look-alikes -----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Order #4512345678 shipped", "invoice INV-2024-00123", "PO 4500012345",
    "Meeting on 2024-03-15 at 10:30:15", "due 15/03/2024", "March 5, 2024",
    "version 1.2.3.4", "upgrade to v1.2.3.4", "Fixed in 10.4.2.1 (build 7)",
    "ISBN 978-3-16-148410-0", "ISBN 9780306406157",
    "id 550e8400-e29b-41d4-a716-446655440000", "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "total $1,299.99 or 1 299,00 €", "USD 2,450.00",
    "card 4111 1111 1111 1112", "4111111111111112",  # Luhn-invalid
    "code 48213759", "ref 20481234937", "12345678901234567890",
    "tracking 9400 1118 9922 3856 9284 99",
    "4155550132",  # ten digits, nothing says phone
    "SSN 078-05-1120", "SSN 666-12-3456", "SSN 900-12-3456", "ssn 123-45-0000",
    "NI number QQ123456C", "GB123456A",  # invalid NINO prefixes
    "GB82 WEST 1234 5698 7654 33", "DE00 3704 0044 0532 0130 00",  # IBAN checksum fails
    "1 85 05 78 006 084 36",  # INSEE key wrong
    "born on 31/02/1985", "DOB: 12/03/2099", "the meeting on 12/03/1985",
    "logo@2x.png", "12:30:45", "A::B", "std::vector", "MAC 00:1A:2B:3C:4D:5E",
    "999.1.1.1", "01.02.03.04",
])
def test_pii_look_alikes_score_below_threshold(text: str) -> None:
    assert found(text) == []


# --- PII: checksums and validation ----------------------------------------------------------

def test_iban_mod97() -> None:
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # one short for GB
    bban = "370400440532013000"
    assert iban_valid("DE" + iban_check_digits("DE", bban) + bban)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert luhn_valid("411111111111111" + luhn_digit("411111111111111"))


def test_card_needs_an_issuer_prefix_and_a_card_grouping() -> None:
    assert luhn_valid("9111111111111110")
    assert found("9111 1111 1111 1110") == []  # no network starts with 9
    assert found("41111 11111 111111") == []  # Luhn-valid Visa, grouped like no card


def test_insee_key_and_corsica() -> None:
    number = "269052A001002"  # born in Corse-du-Sud (2A counts as 19 in the key)
    assert found(f"INSEE {number}{insee_key(number)}") == [
        (f"{number}{insee_key(number)}", "fr_insee")]
    wrong = f"{(int(insee_key(number)) + 1) % 97:02d}"
    assert found(f"INSEE {number}{wrong}") == []


# --- PII: cue words move scores -------------------------------------------------------------

def test_phone_cue_words_raise_and_lower_the_score() -> None:
    bare = score_of("06 12 34 56 78", "06 12 34 56 78")
    called = score_of("Call me on 06 12 34 56 78", "06 12 34 56 78")
    ordered = score_of("Order 06 12 34 56 78", "06 12 34 56 78")
    assert ordered < THRESHOLD <= bare < called


def test_digits_alone_are_a_phone_only_after_a_cue() -> None:
    assert score_of("4155550132", "4155550132") < THRESHOLD
    assert score_of("phone: 4155550132", "4155550132") >= THRESHOLD


def test_cues_do_not_cross_sentences() -> None:
    assert score_of("Order shipped. 06 12 34 56 78", "06 12 34 56 78") >= THRESHOLD
    assert score_of("Order no. 06 12 34 56 78", "06 12 34 56 78") < THRESHOLD


def test_version_cue_makes_an_ip_unlikely() -> None:
    assert score_of("server 1.2.3.4", "1.2.3.4") > score_of("1.2.3.4", "1.2.3.4")
    assert score_of("version 1.2.3.4", "1.2.3.4") < THRESHOLD


def test_ssn_compact_needs_a_cue() -> None:
    assert score_of("536221234", "536221234") < THRESHOLD
    assert score_of("SSN 536221234", "536221234") >= THRESHOLD


@pytest.mark.parametrize(("text", "cue"), [
    ("my social security no 12", "pos"),  # a two-word cue
    ("order then phone 12", "pos"),  # the nearest one decides
    ("12 (order)", "neg"),  # one after, when none is before
    ("order shipped.\n12", None),  # not across sentences
    ("nothing here 12", None),
])
def test_cues_nearest(text: str, cue: str | None) -> None:
    start = text.index("12")
    assert Cues("phone|social security", "order").nearest(text, start, start + 2) == cue


# --- secrets --------------------------------------------------------------------------------

AKIA = "AKIA" + "Q3EGRTYUIOPLKJ2H"
GHP = "ghp_" + "1wHQ7K9f3bXzLrT2mN8pV5cY0aD4sE6gJ7kL"
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAA"
       "AAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"] * 4) + "\n-----END OPENSSH PRIVATE KEY-----")
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


@pytest.mark.parametrize(("text", "value", "kind"), [
    (f"Here it is:\n{PEM}\nthanks", PEM, "private_key"),
    (f"aws_access_key_id = {AKIA}", AKIA, "aws_access_key"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzKq9sTnB0a",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzKq9sTnB0a", "aws_secret_key"),
    (f"curl -H 'Authorization: token {GHP}'", GHP, "github_token"),
    ("export GITHUB_TOKEN=github_pat_11ABCDEFG0abcdefghijkl_" + "a1B2c3D4e5" * 5 + "f6G7h8I9j",
     "github_pat_11ABCDEFG0abcdefghijkl_" + "a1B2c3D4e5" * 5 + "f6G7h8I9j", "github_token"),
    ("SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
     "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
    ("key sk-abcdEFGHijklMNOPqrstT3BlbkFJuvwxYZ0123456789AB",
     "sk-abcdEFGHijklMNOPqrstT3BlbkFJuvwxYZ0123456789AB", "openai_api_key"),
    ("sk-proj-" + "Ab3_x" * 15, "sk-proj-" + "Ab3_x" * 15, "openai_api_key"),
    ("ANTHROPIC_API_KEY=sk-ant-api03-" + "aB3_-9Zq" * 11 + "xyzAbAA",
     "sk-ant-api03-" + "aB3_-9Zq" * 11 + "xyzAbAA", "anthropic_api_key"),
    ("?key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q&x=1", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
     "google_api_key"),
    ("stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
     "stripe_key"),
    (f"Authorization: Bearer {JWT}", JWT, "jwt"),
    ('password = "Tr0ub4dor&3x"', "Tr0ub4dor&3x", "password_assignment"),
    ("DB_PASSWORD=f7u9&2*Y35IYBhH&LB", "f7u9&2*Y35IYBhH&LB", "password_assignment"),
    ('"pwd": "Summer2024!",', "Summer2024!", "password_assignment"),
    ("the wifi password is Hunter2024!.", "Hunter2024!", "password_assignment"),
    ("SECRET_TOKEN=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
     "generic_secret"),
    ('"apiKey": "qZ8xW2vN5mK9pL3jH7gF4dS1"', "qZ8xW2vN5mK9pL3jH7gF4dS1", "generic_secret"),
    ("Authorization: Basic YWRtaW46UzNjcmV0UGFzcw==", "YWRtaW46UzNjcmV0UGFzcw==",
     "generic_secret"),
    ("DATABASE_URL=postgres://app:s3cr3t-Pa55@db:5432/app", "app:s3cr3t-Pa55",
     "url_credentials"),
])
def test_secret_kind_and_exact_span(text: str, value: str, kind: str) -> None:
    assert (value, kind) in found(text, find_secrets)


def test_specific_rule_wins_over_the_assignment_it_sits_in() -> None:
    assert found(f"GITHUB_TOKEN={GHP}", find_secrets) == [(GHP, "github_token")]


@pytest.mark.parametrize("text", [
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "request_id: 550e8400-e29b-41d4-a716-446655440000",
    'checksum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    '"integrity": "sha512-' + "Qz1xL9" * 14 + 'ab==",',
    "image: ghcr.io/acme/api@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78",
    '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4'
    '2mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==">',
    'password = "changeme"', "api_key: <your key>", "SECRET_TOKEN=${SECRET_TOKEN}",
    'API_KEY="xxxxxxxxxxxxxxxx"', "token = 'YOUR_TOKEN_HERE'", "password={{ db_password }}",
    "token = os.environ['GITHUB_TOKEN']", "api_key=None", "password: ********",
    "ghp_" + "x" * 36, "sk-...", "postgres://app:${DB_PASSWORD}@db:5432/app",
    "https://user@git.example.com/repo.git", "max_tokens = 4096", "token_count: 1534",
    "primary_key: id", "sort_key = created_at", "The password is incorrect, try again.",
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "-----END PUBLIC KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev@host",
    "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.abc",  # no "alg" in the header
])
def test_secret_look_alikes_score_below_threshold(text: str) -> None:
    assert found(text, find_secrets) == []


def test_secret_helpers() -> None:
    assert entropy("") == 0.0
    assert entropy("abcd") == 2.0
    assert all(map(placeholder, ["<your-api-key>", "${X}", "xxxxxxxx", "os.getenv('K')"]))
    assert not placeholder("qZ8xW2vN5mK9pL3j")
    assert secret_name("spring.datasource.password") == "password_assignment"
    assert secret_name("AWS_SECRET_ACCESS_KEY") == "generic_secret"
    assert secret_name("aws_access_key_id") is None
    assert secret_name("api_key_file") is None


def test_offsets_survive_case_folding_that_changes_length() -> None:
    text = "İstanbul office: PASSWORD=Xy7!k9LmQ2"  # "İ".lower() is two characters
    assert found(text, find_secrets) == [("Xy7!k9LmQ2", "password_assignment")]


# --- redaction ------------------------------------------------------------------------------

def test_redact_replaces_each_span_by_its_kind() -> None:
    text = "Mail jane@example.com or call +44 20 7946 0958."
    assert redact(text, find_pii(text)) == "Mail [EMAIL] or call [PHONE]."


def test_redact_merges_overlapping_spans_and_keeps_the_best_kind() -> None:
    spans = [Span(0, 5, "phone", 0.6), Span(3, 9, "credit_card", 0.9)]
    assert redact("0123456789", spans) == "[CREDIT_CARD]9"


def test_redact_edge_cases() -> None:
    assert redact("abc", []) == "abc"
    assert redact("abc", [Span(0, 3, "email", 1.0)]) == "[EMAIL]"
    assert redact("ab", [Span(0, 1, "x", 1.0), Span(1, 2, "y", 1.0)]) == "[X][Y]"
    assert redact("abc", [Span(1, 1, "x", 1.0)]) == "abc"  # empty spans change nothing
    text = "a😀 b@c.io"
    assert redact(text, find_pii(text)) == "a😀 [EMAIL]"


def test_select_keeps_the_best_of_overlapping_spans() -> None:
    spans = [Span(0, 10, "a", 0.5), Span(2, 4, "b", 0.9), Span(5, 12, "c", 0.7),
             Span(20, 22, "d", 0.1)]
    assert [s.kind for s in select(spans)] == ["b", "c", "d"]


def test_windows_merge() -> None:
    assert windows("ab 12 cd 34", re.compile(r"\d\d"), 1, 1) == [(2, 6), (8, 11)]
    assert windows("12345", re.compile(r"\d"), 1, 1) == [(0, 5)]


# --- hostile input: must finish (speed is measured in bench/guard_rules.py) -----------------

@pytest.mark.parametrize("text", [
    "a" * 1_000_000, "1 " * 500_000, "1" * 1_000_000, "a@" * 500_000, "+1 " * 333_333,
    "1.1.1.1 " * 20_000, "DE89 " * 50_000, "eyJ" * 333_333, "password=" * 100_000,
    "-----BEGIN RSA PRIVATE KEY-----\n" * 30_000, "a://b:" * 160_000, "ab:" * 333_333,
    bytes(random.Random(0).getrandbits(8) for _ in range(1_000_000)).decode("latin-1"),
])
def test_hostile_input_completes(text: str) -> None:
    for finder in (find_pii, find_secrets):
        spans = finder(text)
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


# --- the synthetic sets: honest labels, and precision and recall ----------------------------

def test_synthetic_sets_are_seeded_and_labelled_validly() -> None:
    assert make_pii_set(50, seed=3) == make_pii_set(50, seed=3)
    assert make_pii_set(50, seed=3) != make_pii_set(50, seed=4)
    for text, gold in make_pii_set(300, seed=5):
        for start, end, kind in gold:
            value = text[start:end]
            assert value == value.strip()
            compact = value.replace(" ", "").replace("-", "")
            if kind == "iban":
                assert iban_valid(compact.upper())
            elif kind == "credit_card":
                assert luhn_valid(compact)


@pytest.mark.parametrize(("make", "find"), [(make_pii_set, find_pii),
                                            (make_secret_set, find_secrets)])
def test_precision_and_recall_on_the_synthetic_set(
        make: Callable[[int, int], list[tuple[str, list[tuple[int, int, str]]]]],
        find: Finder) -> None:
    counts = tally(make(2000, 1234), find, THRESHOLD)
    total = counts["all"]
    assert total.gold > 2000
    assert total.precision >= 0.95, {k: round(t.precision, 3) for k, t in counts.items()}
    assert total.recall >= 0.95, {k: round(t.recall, 3) for k, t in counts.items()}
