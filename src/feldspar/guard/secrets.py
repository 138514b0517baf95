"""Credentials found by rules: tokens with a vendor's prefix, private keys, JWTs, and values
assigned to names like `password` or `api_key` (gitleaks' and detect-secrets' recipes).

A token with a vendor prefix and the right length scores 0.95-0.99; a JWT whose header
decodes to JSON with "alg", 0.97; a value assigned to a secret-sounding name scores by its
randomness (Shannon entropy), and a placeholder ("changeme", "<your key>", "${VAR}") scores
0.1. A git SHA, a UUID or a checksum is a secret only where a secret-sounding name is
assigned it.

Example:
    >>> [(s.kind, s.score) for s in find_secrets('password = "Tr0ub4dor&3x"')]
    [('password_assignment', 0.85)]
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterator

from feldspar.guard.pii import Cues, Scorer, Window, scan, select, windows
from feldspar.guard.verdicts import Span

PLACEHOLDER_SCORE = 0.1


def entropy(value: str) -> float:
    """Shannon entropy of the characters of `value`, in bits per character.

    Example:
        >>> entropy("aaaa"), entropy("abcd")
        (0.0, 2.0)
    """
    return sum(n / len(value) * math.log2(len(value) / n) for n in Counter(value).values())


PLACEHOLDER = re.compile(
    r"^(?:<[^>]*>|\$\{[^}]*\}?|\{\{.*|%\(\w+\)s|\$[A-Za-z_]\w*|\*+|x+|\.+|…|-+)$"
    r"|\.\.\.|your|example|sample|change_?me|placeholder|dummy|redacted|insert|replace|todo"
    r"|fixme|xxxx|secret_?here|_here\b|^(?:true|false|none|null|nil|undefined|password"
    r"|secret|token|test|string|value)$"
    r"|^(?:os\.|process\.env|env\(|getenv|config\[|settings\.|vault:|secrets\.)",
    re.IGNORECASE)
"""Values that stand for a secret without being one: templates, masks, references."""


def placeholder(value: str) -> bool:
    """Whether `value` is a stand-in rather than a real secret.

    Example:
        >>> placeholder("${DB_PASSWORD}"), placeholder("<your-api-key>"), placeholder("x7Q!p")
        (True, True, False)
    """
    return bool(PLACEHOLDER.search(value)) or "(" in value or entropy(value) < 1.5


# --- tokens with a vendor's prefix -----------------------------------------------------------

def _token(score: float, body_from: int = 0) -> Scorer:
    """`score` for a token whose random part (from `body_from`) is not a placeholder."""
    def scorer(m: re.Match[str]) -> float:
        return PLACEHOLDER_SCORE if placeholder(m.group()[body_from:]) else score

    return scorer


def _openai_score(m: re.Match[str]) -> float | None:
    key = m.group()
    if key.startswith("sk-ant-"):
        return None  # Anthropic's, found by its own rule
    if placeholder(key[3:]):
        return PLACEHOLDER_SCORE
    if "T3BlbkFJ" in key:  # base64 of "openai", in every legacy and project key
        return 0.99
    if re.match(r"sk-(?:proj|svcacct|admin)-", key) or re.fullmatch(r"sk-[A-Za-z0-9]{48}", key):
        return 0.95
    return 0.7 if entropy(key[3:]) >= 4.0 else None


def _anthropic_score(m: re.Match[str]) -> float:
    if placeholder(m.group()[14:]):
        return PLACEHOLDER_SCORE
    return 0.99 if m.group().endswith("AA") else 0.95


def _jwt_score(m: re.Match[str]) -> float | None:
    header = m.group().split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    return 0.97 if isinstance(decoded, dict) and "alg" in decoded else None


def _slack_score(m: re.Match[str]) -> float | None:
    parts = m.group().split("-")
    return 0.95 if len(parts) >= 3 and not placeholder(parts[-1]) else None


def _rule(prefix: str, rest: str, edge: str = "A-Za-z0-9_\\-") -> re.Pattern[str]:
    """A token that starts with `prefix` and is not inside a longer token (no character of
    `edge` before it). The prefix comes first so that the scan jumps from one occurrence of
    it to the next; the lookbehind after it, which holds the prefix again, checks the
    character before the token."""
    return re.compile(f"{prefix}(?<![{edge}]{prefix}){rest}")


TOKEN_END = r"(?![A-Za-z0-9_\-])"

TOKENS: tuple[tuple[str, str, re.Pattern[str], Scorer], ...] = (
    # (kind, a literal the token holds, pattern, scorer)
    # AWS's documented example key (AKIAIOSFODNN7EXAMPLE) is reported too, as detect-secrets
    # does: it has the shape of a key, and a guard cannot tell that it is dead.
    ("aws_access_key", "A", _rule("(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)",
                                  "[A-Z2-7]{16}(?![A-Za-z0-9])", "A-Za-z0-9"),
     lambda m: 0.97 if entropy(m.group()[4:]) >= 2.5 else None),
    ("github_token", "gh", _rule("gh[pousr]_", r"[A-Za-z0-9]{36,251}" + TOKEN_END),
     _token(0.97, 4)),
    ("github_token", "github_pat_", _rule("github_pat_", r"[A-Za-z0-9_]{82,240}" + TOKEN_END),
     _token(0.97, 11)),
    ("slack_token", "xox", _rule("xox[baprs]-", r"[A-Za-z0-9\-]{10,250}+"), _slack_score),
    ("openai_api_key", "sk-", _rule("sk-", r"[A-Za-z0-9_\-]{20,250}+"), _openai_score),
    ("anthropic_api_key", "sk-ant-",
     _rule("sk-ant-", r"(?:api|admin|sid)\d\d-[A-Za-z0-9_\-]{80,120}+"), _anthropic_score),
    ("google_api_key", "AIza", _rule("AIza", r"[A-Za-z0-9_\-]{35}" + TOKEN_END),
     _token(0.95, 4)),
    ("stripe_key", "k_live_", _rule("[sr]k_live_", r"[A-Za-z0-9]{24,247}(?![A-Za-z0-9])",
                                    "A-Za-z0-9_"), _token(0.97, 8)),
    ("jwt", "eyJ", _rule("eyJ", r"[A-Za-z0-9_\-]{5,2000}+\.eyJ[A-Za-z0-9_\-]{2,8000}+"
                         r"\.[A-Za-z0-9_\-]{0,2000}+"), _jwt_score),
)


def _tokens(text: str) -> Iterator[Span]:
    for kind, literal, pattern, scorer in TOKENS:
        if literal in text:
            yield from scan(text, pattern, kind, scorer)


# --- AWS secret keys: 40 characters of base64, after "aws" and "secret" ------------------------

AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
AWS_TRIGGER = re.compile("secret")
AWS_CUES = Cues("aws secret|secret access|secretaccesskey|awssecretaccesskey|secret key")


def _aws_secrets(text: str, lowered: str) -> Iterator[Span]:
    if "aws" not in lowered or "secret" not in lowered:
        return
    for lo, hi in windows(text, AWS_TRIGGER, 0, 120, lowered):
        yield from _aws_secrets_in(text, lo, hi)


def _aws_secrets_in(text: str, lo: int, hi: int) -> Iterator[Span]:
    for m in AWS_SECRET.finditer(text, lo, hi):
        value = m.group()
        # Both cases: not a hex digest, not a word in capitals.
        mixed = any(c.islower() for c in value) and any(c.isupper() for c in value)
        if mixed and entropy(value) >= 4.0 and AWS_CUES.nearest(text, *m.span()) == "pos":
            yield Span(m.start(), m.end(), "aws_secret_key", 0.93)


# --- private keys ----------------------------------------------------------------------------

PEM_LABEL = r"(?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----"
PEM_BEGIN = re.compile(r"-----BEGIN " + PEM_LABEL)
PEM_END = re.compile(r"-----END " + PEM_LABEL)
PEM_BODY = re.compile(r"(?:\s{1,4}+[A-Za-z0-9+/=]{40,80}+){0,1000}+"
                      r"(?:\s{1,4}+[A-Za-z0-9+/=]{1,80}+)?")
"""The base64 lines of a key whose END line is missing (prose after it is not taken)."""
BASE64_CHAR = re.compile(r"[A-Za-z0-9+/]")
PEM_MAX = 65536


def _private_keys(text: str) -> Iterator[Span]:
    """PEM blocks from BEGIN to END; a truncated one to the end of its base64 body. A header
    with no body (a placeholder, or prose that names the format) scores low."""
    if "PRIVATE KEY" not in text:
        return
    begins = list(PEM_BEGIN.finditer(text))
    ends = [m.end() for m in PEM_END.finditer(text)]
    for i, begin in enumerate(begins):
        after = bisect.bisect_left(ends, begin.end())
        limit = begins[i + 1].start() if i + 1 < len(begins) else len(text)
        if after < len(ends) and ends[after] <= min(limit, begin.start() + PEM_MAX):
            end, complete = ends[after], True
        else:
            body = PEM_BODY.match(text, begin.end())
            end, complete = (body.end() if body else begin.end()), False
            end = begin.end() + len(text[begin.end():end].rstrip())
        body_chars = len(BASE64_CHAR.findall(text, begin.end(), end))
        score = (0.99 if complete else 0.95) if body_chars >= 64 else 0.2
        yield Span(begin.start(), end, "private_key", score)


# --- assignments and URLs --------------------------------------------------------------------

ASSIGNMENT = re.compile(
    r"(?<![\w.\-])(?P<name>[\w.\-]{0,40}?(?i:pass|pwd|secret|token|key|auth|cred|bearer|kennwort)"
    r"[\w.\-]{0,40}+)[\"']?[ \t]{0,4}+(?::=|=>|=|:)[ \t]{0,4}+"
    r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{1,256}+)(?P=q)|(?P<v>(?:[^\s\"'`,;&]|&(?!\w{1,30}=))"
    r"{1,256}+))")
"""`name = value`, `name: "value"`, `"name": "value"`, `name := value`, where the name has a
word like pass, secret, token or key (checked word by word by `secret_name`). An unquoted
value ends at a space, a comma, a semicolon or the `&` of a URL's next parameter."""
PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "pw",
                            "passwort", "kennwort", "motdepasse"})
SECRET_WORDS = frozenset({"secret", "token", "apikey", "credential", "credentials", "bearer",
                          "authtoken", "accesstoken", "privatekey"})
KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "auth", "signing",
                            "encryption", "master", "client", "app", "account", "service"})
NOT_SECRET_WORDS = frozenset({
    "max", "min", "count", "num", "limit", "length", "len", "size", "type", "id", "url",
    "uri", "endpoint", "file", "path", "name", "expires", "expiry", "ttl", "header", "prefix",
    "format", "policy", "hash", "field", "env", "var", "usage", "used", "tokens", "ids",
    "public", "pub", "required", "enabled", "reset", "hint", "label", "placeholder"})
CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@functools.lru_cache(maxsize=4096)
def secret_name(name: str) -> str | None:
    """The kind of secret that a variable or key name holds: "password_assignment",
    "generic_secret", or None for a name that holds none (`max_tokens`, `sort_key`).

    Example:
        >>> secret_name("DB_PASSWORD"), secret_name("apiKey"), secret_name("max_tokens")
        ('password_assignment', 'generic_secret', None)
    """
    words = [w.lower() for part in re.split(r"[_.\-\s]+", name) for w in CAMEL.findall(part)]
    joined = ["".join(words[i:i + 2]) for i in range(len(words))]
    if not words or NOT_SECRET_WORDS.intersection(words):
        return None
    if PASSWORD_WORDS.intersection(words + joined):
        return "password_assignment"
    qualified_key = any(w == "key" and i and words[i - 1] in KEY_QUALIFIERS
                        for i, w in enumerate(words))
    if qualified_key or SECRET_WORDS.intersection(words + joined):
        return "generic_secret"
    return None


def _value_score(kind: str, value: str) -> float | None:
    """How likely an assigned value is a real secret, by its length and randomness."""
    if placeholder(value) or value.isdigit():
        return PLACEHOLDER_SCORE
    bits = entropy(value)
    if kind == "password_assignment":
        return 0.85 if len(value) >= 6 and bits >= 2.0 else 0.3
    hexadecimal = all(c in "0123456789abcdefABCDEF" for c in value)
    if len(value) >= 16 and bits >= (3.0 if hexadecimal else 3.5):
        return 0.85
    return 0.6 if len(value) >= 12 and bits >= 3.3 else 0.3


def _assignments(text: str, within: list[Window]) -> Iterator[Span]:
    for m in (m for lo, hi in within for m in ASSIGNMENT.finditer(text, lo, hi)):
        kind = secret_name(m["name"])
        group = "qv" if m["qv"] is not None else "v"
        score = _value_score(kind, m[group]) if kind else None
        if kind and score is not None:
            yield Span(m.start(group), m.end(group), kind, score)


SPOKEN_PASSWORD = re.compile(
    r"(?<![\w\-])(?:(?i:password|passwd|passphrase|passcode|pwd|mot\s+de\s+passe|passwort"
    r"|kennwort)\s{1,3}(?i:is|was|est|ist|lautet)|--(?:password|passwd|pass|pwd))\s{1,3}"
    r"[\"'“]?(?P<v>[^\s\"'”]{4,128}+)")
"""A password given in a sentence ("the wifi password is ...", "Das Passwort lautet ...")
or as a command-line option (`--password ...`)."""
AUTHORIZATION = re.compile(r"(?P<scheme>(?i:bearer|basic))\s{1,4}+"
                           r"(?P<v>[A-Za-z0-9._~+/\-]{16,2048}+=*)")
URL_CREDENTIALS = re.compile(
    r"(?<![\w+.\-])[A-Za-z][A-Za-z0-9+.\-]{1,15}+://(?P<v>[^\s:/@?#\"'<>]{0,64}+:"
    r"(?P<password>[^\s/@?#\"'<>]{1,128}+))@(?=[A-Za-z0-9\[])")


def _authorization_score(m: re.Match[str]) -> float | None:
    """A Bearer token as random as a key; Basic credentials that decode to user:password."""
    value = m["v"]
    if placeholder(value):
        return None
    if m["scheme"].lower() == "bearer":
        return 0.8 if entropy(value) >= 3.5 else None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return 0.9 if ":" in decoded else None


def _spoken_passwords(text: str, within: list[Window]) -> Iterator[Span]:
    """Passwords in prose: a word with at least two kinds of character (letters in both
    cases, digits, symbols) is likelier a password than "incorrect" or "required"."""
    for m in (m for lo, hi in within for m in SPOKEN_PASSWORD.finditer(text, lo, hi)):
        value = m["v"].rstrip(".,;:)")
        if len(value) < 4 or placeholder(value):
            continue
        kinds = sum((any(c.islower() for c in value), any(c.isupper() for c in value[1:]),
                     any(c.isdigit() for c in value), any(not c.isalnum() for c in value)))
        score = 0.8 if kinds >= 2 and len(value) >= 6 else 0.3
        yield Span(m.start("v"), m.start("v") + len(value), "password_assignment", score)


def _url_score(m: re.Match[str]) -> float:
    return PLACEHOLDER_SCORE if placeholder(m["password"]) else 0.93


NAME_TRIGGER = re.compile("pass|pwd|secret|token|key|auth|cred|bearer|kennwort")
AUTH_TRIGGER = re.compile("bearer|basic")
URL_TRIGGER = re.compile("://")


def _credentials(text: str, lowered: str) -> Iterator[Span]:
    # Every match holds its trigger: the name (at most 40 characters before the key word,
    # a value of at most 256 after), the word Bearer or Basic, the "://" of a URL.
    named = windows(text, NAME_TRIGGER, 44, 330, lowered)
    yield from _assignments(text, named)
    yield from _spoken_passwords(text, named)
    yield from scan(text, AUTHORIZATION, "generic_secret", _authorization_score, None,
                    windows(text, AUTH_TRIGGER, 0, 2070, lowered))
    yield from scan(text, URL_CREDENTIALS, "url_credentials", _url_score, None,
                    windows(text, URL_TRIGGER, 17, 210))


def _lowered(text: str) -> str:
    """`text` in lower case, character for character (offsets stay valid)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(ASCII_LOWER)


ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def find_secrets(text: str) -> list[Span]:
    """The credentials in `text`: spans sorted by start, none overlapping.

    Kinds: private_key, aws_access_key, aws_secret_key, github_token, slack_token,
    openai_api_key, anthropic_api_key, google_api_key, stripe_key, jwt,
    password_assignment, generic_secret, url_credentials. Where rules overlap (a GitHub
    token assigned to `GITHUB_TOKEN`), the more specific one wins by its higher score.

    Example:
        >>> text = "DATABASE_URL=postgres://app:s3cr3t-Pa55@db:5432/app"
        >>> [(text[s.start:s.end], s.kind) for s in find_secrets(text)]
        [('app:s3cr3t-Pa55', 'url_credentials')]
    """
    lowered = _lowered(text)
    return select([*_tokens(text), *_private_keys(text), *_aws_secrets(text, lowered),
                   *_credentials(text, lowered)])
