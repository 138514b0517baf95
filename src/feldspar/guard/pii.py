"""Personal data found by rules: a pattern per format, a checksum where the format has one,
and words nearby that make a match likelier or less likely (Microsoft Presidio's recipe).

Each span's score is the probability that it is what its kind says. A checksum-valid IBAN,
card or INSEE number and an email address score about 0.95-0.99; a phone number in a
national format without a cue about 0.6-0.8, higher after "call" or "tel", lower after
"order" or "invoice"; a bare run of digits that only a cue makes a phone, about 0.3. Look-
alikes that fail a checksum or a format rule give no span. Names and postal addresses need
a named-entity model and are not found here (see docs/pii.md).

Scans take time linear in the text, hostile input included: repetitions are bounded and
never nested ambiguously; each match starts at a boundary that its own characters cannot
cross (a lookbehind placed after its first character, see `starting`), so no run of
characters is scanned from each of its positions; and the detailed patterns only read the
windows around cheap triggers (two digits, an @ between letters, see `windows`).

Example:
    >>> [(s.kind, s.score) for s in find_pii("Call me on 06 12 34 56 78 or mail a@b.fr")]
    [('phone', 0.94), ('email', 0.99)]
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date

from feldspar.guard.verdicts import Span

Scorer = Callable[[re.Match[str]], float | None]
"""The probability that a match is what its rule says, before cues; None if it fails."""


# --- shared by the PII and the secrets rules -------------------------------------------------

CUE_TOKEN = re.compile(r"[^\W\d_][^\W_]*|§|\n|(?:(?<=\d)|(?<=\w{4}))\.(?=\s)|[?!](?=\s)")
"""Words, and sentence ends: a line break; ? or ! before a space; a full stop before a space
after a digit or a token of four characters or more (not after "tel." or "No.")."""
SENTENCE_ENDS = frozenset({"\n", ".", "?", "!"})
LETTER = re.compile(r"[^\W\d_]")


class Cues:
    """Words near a match that make it likelier (`positive`) or less likely (`negative`),
    each a "|"-separated list of lower-case words and two-word phrases.

    The cue nearest before the match in its sentence decides (within 48 characters; failing
    that, the first one in the 16 after), so "call me about order 4512345678" reads as an
    order number. A positive cue removes 70% of the doubt, a negative one 70% of the belief.

    Example:
        >>> cues = Cues("phone|call", "order|order number")
        >>> cues.adjust("call 555", 5, 8, 0.5), cues.adjust("Order no. 555", 10, 13, 0.5)
        (0.85, 0.15)
    """

    BEFORE = 48
    AFTER = 16

    def __init__(self, positive: str, negative: str = "") -> None:
        self._cues = {w: "pos" for w in positive.split("|")}
        self._cues |= {w: "neg" for w in negative.split("|") if w}

    def _cue(self, words: list[str], i: int, previous: bool) -> str | None:
        """The cue that the phrase or word at `i` is, if any (a phrase with the word
        before it when `previous`, else with the one after)."""
        j = i - 1 if previous else i + 1
        if 0 <= j < len(words):
            pair = f"{words[j]} {words[i]}" if previous else f"{words[i]} {words[j]}"
            if pair in self._cues:
                return self._cues[pair]
        return self._cues.get(words[i])

    def nearest(self, text: str, start: int, end: int) -> str | None:
        """"pos", "neg", or None when no cue is near the span [start, end) in its sentence."""
        lo, hi = max(0, start - self.BEFORE), min(len(text), end + self.AFTER)
        if not (LETTER.search(text, lo, start) or LETTER.search(text, end, hi)):
            return None  # no words near (a list of numbers): nothing to read
        words = CUE_TOKEN.findall(text[lo:start].lower())
        for i in range(len(words) - 1, -1, -1):
            if words[i] in SENTENCE_ENDS:
                break
            if cue := self._cue(words, i, previous=True):
                return cue
        words = CUE_TOKEN.findall(text[end:hi].lower())
        for i in range(len(words)):
            if words[i] in SENTENCE_ENDS:
                break
            if cue := self._cue(words, i, previous=False):
                return cue
        return None

    def adjust(self, text: str, start: int, end: int, score: float) -> float:
        """`score` moved by the cue nearest the span [start, end), if any."""
        cue = self.nearest(text, start, end)
        if cue == "pos":
            score = 1 - (1 - score) * 0.3
        elif cue == "neg":
            score *= 0.3
        return round(score, 4)


Window = tuple[int, int]
"""A stretch [start, end) of a text that a rule needs to read."""


def windows(text: str, trigger: re.Pattern[str], before: int, after: int,
            source: str | None = None) -> list[Window]:
    r"""The stretches from `before` characters ahead of each match of `trigger` to `after`
    characters past it, merged where they overlap.

    A rule whose every match holds a trigger (a digit pair, an "@", a keyword) need only
    read there: one cheap scan of the text replaces one scan per rule. `source` is where to
    look for the trigger instead of `text` (a lower-cased copy of the same length).

    Example:
        >>> windows("ab 12 cd 34", re.compile(r"\d\d"), 1, 1)
        [(2, 6), (8, 11)]
    """
    out: list[list[int]] = []
    for m in trigger.finditer(text if source is None else source):
        lo, hi = max(0, m.start() - before), min(len(text), m.end() + after)
        if out and lo <= out[-1][1]:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def cluster(trigger: str, gap: int) -> re.Pattern[str]:
    """A pattern for `trigger` that takes the next ones with it while they are at most `gap`
    characters apart, so that dense triggers (hostile input) make few matches. Triggers start
    with a literal or a small class, so the scan jumps between candidates."""
    return re.compile(f"{trigger}(?:[\\s\\S]{{0,{gap}}}?{trigger})*+")


def starting(first: str, edge: str) -> str:
    """A pattern for `first` (one character) where no character of `edge` comes before it.

    The character comes first and the lookbehind, which holds it again, after: a pattern
    that begins with a character lets the regex engine jump between candidates, one that
    begins with a lookbehind makes it try every position (four times slower).
    """
    return f"{first}(?<![{edge}]{first})"


def scan(text: str, pattern: re.Pattern[str], kind: str, scorer: Scorer,
         cues: Cues | None = None, within: Iterable[Window] | None = None) -> Iterator[Span]:
    """A span for each match that `scorer` accepts (the group named "v" if the pattern
    has one, else the whole match), its score adjusted by `cues`; only in the windows
    `within` when given (lookbehinds still see the text before a window)."""
    group = "v" if "v" in pattern.groupindex else 0
    for lo, hi in ((0, len(text)),) if within is None else within:
        for m in pattern.finditer(text, lo, hi):
            score = scorer(m)
            if score is not None:
                start, end = m.span(group)
                yield Span(start, end, kind,
                           cues.adjust(text, start, end, score) if cues else score)


def _best(overlapping: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(overlapping, key=lambda s: (-s.score, s.start - s.end, s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def select(spans: Iterable[Span]) -> list[Span]:
    """The spans that do not overlap, by start: of overlapping spans the one with the best
    score wins, then the longer one. Only spans that overlap, directly or through others,
    are compared with each other, so many spans cost little more than sorting them."""
    out: list[Span] = []
    overlapping: list[Span] = []
    reach = -1
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if overlapping and span.start >= reach:
            out += _best(overlapping)
            overlapping = []
        overlapping.append(span)
        reach = max(reach, span.end) if len(overlapping) > 1 else span.end
    return out + _best(overlapping) if overlapping else out


# --- email -----------------------------------------------------------------------------------

EMAIL = re.compile(starting("[A-Za-z0-9]", r"\w.%+\-") + r"[A-Za-z0-9._%+\-]{0,63}+@"
                   r"(?P<domain>[A-Za-z0-9][A-Za-z0-9.\-]{0,252}+)")
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "css", "map"})


AT = cluster(r"@(?<=[A-Za-z0-9_%+\-]@)(?=[A-Za-z0-9])", 64)
"""Emails hold an @ between an address's characters."""


def _emails(text: str) -> Iterator[Span]:
    for lo, hi in windows(text, AT, 66, 262):
        yield from _emails_in(text, lo, hi)


def _emails_in(text: str, lo: int, hi: int) -> Iterator[Span]:
    for m in EMAIL.finditer(text, lo, hi):
        domain = m["domain"].rstrip(".-")
        labels = domain.split(".")
        tld = labels[-1].lower()
        if (len(labels) < 2 or not tld.isalpha() or not 2 <= len(tld) <= 24 or tld in FILE_TLDS
                or not all(LABEL.fullmatch(label) for label in labels)):
            continue
        end = m.start("domain") + len(domain)
        # git@github.com:org/repo.git is an SSH remote, not someone's address.
        scp = text[end:end + 1] == ":" and text[end + 1:end + 2] not in ("", " ", "\n")
        yield Span(m.start(), end, "email", 0.3 if scp else 0.99)


# --- phone -----------------------------------------------------------------------------------

NUM_EDGE = r"\w+.\-/"
"""What may not come before a number (it would be inside a longer token or number)."""
NUM_END = r"(?![\w\-]|[.,/:]\d|[ ]\d)"
"""Not followed by more of a token or a number."""


def number(first: str, rest: str) -> str:
    """A number that starts with `first` (one character) and goes on with `rest`, not
    inside a longer token or number."""
    return starting(first, NUM_EDGE) + rf"(?<!\d[ ]{first}){rest}{NUM_END}"

PHONE_CUES = Cues(
    "phone|phones|telephone|tel|mobile|cell|cellphone|fax|call|called|calling|ring|whatsapp"
    "|sms|text|reach|contact|hotline|téléphone|tél|portable|appeler|appelez|joindre|numéro"
    "|numero|telefon|handy|mobil|anrufen|rufen|erreichbar|erreichen",
    "order|invoice|ref|reference|ticket|tracking|account|acct|po|sku|serial|id|case|code|room"
    "|isbn|version|build|zip|postcode|commande|facture|bestellung|rechnung|kundennummer")


def _phone_format(first: str, rest: str, score: float, low: int, high: int
                  ) -> tuple[re.Pattern[str], Scorer]:
    """A phone pattern (see `number`), and its scorer: `score` when the number has `low` to
    `high` digits (a trunk "(0)" and a "00" international prefix not counted)."""
    def scorer(m: re.Match[str]) -> float | None:
        found = m.group().replace("(0)", "")
        count = sum(c.isdigit() for c in found) - (2 if found.startswith("00") else 0)
        return score if low <= count <= high else None

    return re.compile(number(first, rest)), scorer


PHONE_FORMATS = (
    # +33 6 12 34 56 78, +44 (0)20 7946 0958, +1 (415) 555-0132, 0049 30 1234567
    _phone_format(r"\+", r"[1-9]\d{0,2}(?:[ .\-]?\(0\)[ ]?|[ .\-]|(?=\())\(?\d{1,10}\)?"
                  r"(?:[ .\-]\(?\d{1,10}\)?){0,6}", 0.85, 8, 15),
    _phone_format("0", r"0[1-9]\d{0,2}[ .\-]\(?\d{1,10}\)?(?:[ .\-]\(?\d{1,10}\)?){1,6}", 0.6,
                  8, 15),
    _phone_format(r"\+", r"[1-9]\d{7,14}", 0.75, 8, 15),
    # US: (415) 555-0132, 415-555-0132, 1-415-555-0132
    _phone_format("[(2-9]", r"(?:(?<=\()[2-9]\d\d\)[ ]?|(?<=[2-9])\d\d[ .\-])[2-9]\d\d[ .\-]"
                  r"\d{4}", 0.75, 10, 10),
    _phone_format("1", r"[ .\-]?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d[ .\-])[2-9]\d\d[ .\-]\d{4}",
                  0.75, 11, 11),
    # FR: 06 12 34 56 78, 06.12.34.56.78
    _phone_format("0", r"[1-9](?P<s>[ .\-])\d\d(?:(?P=s)\d\d){3}", 0.8, 10, 10),
    # UK: 020 7946 0958, 0161 496 0734, 07700 900123, 07700 900 123
    _phone_format("0", r"[1-9](?:\d[ \-]\d{4}[ \-]\d{4}|\d{2}[ \-]\d{3}[ \-]\d{4}"
                  r"|\d{3}[ \-]\d{6}|\d{3}[ \-]\d{3}[ \-]\d{3})", 0.65, 11, 11),
    # DE: 030 12345678, 030/1234567, (030) 1234567, 0171-1234567, 030 1234 5678
    _phone_format("[(0]", r"(?:(?<=\()0[1-9]\d{1,4}\)[ ]?|(?<=0)[1-9]\d{1,4}(?:[ ]?/[ ]?|[ \-]))"
                  r"\d{3,8}(?:[ \-]\d{2,5})?", 0.6, 9, 12),
    # Digits alone: French and British mobiles (0612345678, 07700900123) are likely phones;
    # 4155550132 or 0298765432 only after a cue.
    _phone_format("0", r"(?:[67]\d{8}|7\d{9})", 0.55, 10, 11),
    _phone_format(r"\d", r"(?:(?<=[2-9])\d\d[2-9]\d{6}|(?<=0)[1-9]\d{8,9})", 0.3, 10, 11),
)




# --- bank accounts and cards -----------------------------------------------------------------

IBAN_TABLE = ("AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 "
              "DK18 DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 "
              "IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 "
              "ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 "
              "SE24 SI19 SK24 SM27 TL23 TN24 TR26 UA29 VA22 VG24 XK20")
IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in IBAN_TABLE.split()}
"""ISO 13616 IBAN length by country (SWIFT's registry)."""

IBAN = re.compile(starting("[A-Za-z]", "A-Za-z0-9") + r"[A-Za-z]\d{2}(?:[ ]?[A-Za-z0-9]){10,30}+")
IBAN_CUES = Cues("iban|bank|account|acct|wire|transfer|sepa|konto|kontonummer|überweisung"
                 "|bankverbindung|compte|rib|virement")


def iban_valid(iban: str) -> bool:
    """Whether a compact, upper-case IBAN has its country's length and passes mod 97."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


IBAN_BODIES = {n: re.compile(rf"(?:[ ]?[A-Za-z0-9]){{{n}}}") for n in set(IBAN_LENGTHS.values())}
"""An IBAN of each length: so many letters and digits, a space allowed before each."""


def _iban_end(text: str, m: re.Match[str]) -> int | None:
    """Where the IBAN that `m` starts ends, if it is one. The match may run on into the next
    words: the IBAN is the country's length of characters, spaces not counted."""
    length = IBAN_LENGTHS.get(m.group()[:2].upper())
    body = IBAN_BODIES[length].match(text, m.start(), m.end()) if length else None
    if body is None or text[body.end():body.end() + 1].isalnum():
        return None
    return body.end() if iban_valid(body.group().replace(" ", "").upper()) else None


def _ibans(text: str, within: Iterable[Window]) -> Iterator[Span]:
    for lo, hi in within:
        m = IBAN.search(text, lo, hi)
        while m:
            end = _iban_end(text, m)
            if end is None:  # the next token inside this match may start one
                m = IBAN.search(text, m.start() + 1, hi)
                continue
            yield Span(m.start(), end, "iban", IBAN_CUES.adjust(text, m.start(), end, 0.98))
            m = IBAN.search(text, end, hi)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (cards, some national IDs)."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


CARD = re.compile(starting(r"\d", r"\w\-+./,") + r"(?<!\d[ \-]\d)(?:[ \-]?\d){12,18}"
                  r"(?![\w\-]|[.,/]\d|[ \-]\d{4})")
CARD_CUES = Cues(
    "card|credit|debit|visa|mastercard|master card|amex|american express|discover|diners|jcb"
    "|maestro|cc|ccn|pan|payment|paid|pay|charge|charged|carte|cb|karte|kreditkarte",
    "order|invoice|tracking|ref|reference|account|iban|id|serial|imei|isbn|code|commande"
    "|bestellung")
CARD_GROUPS = ((4, 6, 5), (4, 6, 4))


def card_issuer(digits: str) -> bool:
    """Whether the number's prefix belongs to a card network issuing that length."""
    n, p2, p3, p4 = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    rules = ((digits[0] == "4", n in (13, 16, 19)),                          # Visa
             (51 <= p2 <= 55 or 2221 <= p4 <= 2720, n == 16),                # Mastercard
             (p2 in (34, 37), n == 15),                                      # Amex
             (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65, 16 <= n <= 19),    # Discover
             (300 <= p3 <= 305 or p2 in (36, 38, 39), 14 <= n <= 19),        # Diners
             (3528 <= p4 <= 3589 or p2 == 62, 16 <= n <= 19),                # JCB, UnionPay
             (p2 in (50, 56, 57, 58, 63, 67), 12 <= n <= 19))                # Maestro
    return any(length_ok for prefix_ok, length_ok in rules if prefix_ok)


def _card_score(m: re.Match[str]) -> float | None:
    groups = re.split(r"[ \-]", m.group())
    digits = "".join(groups)
    if not (luhn_valid(digits) and card_issuer(digits)):
        return None
    if len(groups) == 1:
        return 0.8
    sizes = tuple(len(g) for g in groups)
    fours = all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4
    return 0.95 if fours or sizes in CARD_GROUPS else None



# --- national identifiers --------------------------------------------------------------------

ID_NEGATIVE = ("order|invoice|ref|reference|ticket|tracking|sku|serial|part|model|phone|tel|call"
               "|isbn|code|commande|bestellung")

SSN = re.compile(number(r"\d", r"\d\d(?P<s>[ \-]?)(?P<g>\d{2})(?P=s)(?P<n>\d{4})"))
SSN_CUES = Cues("ssn|ss|social|social security|taxpayer|tin|itin", ID_NEGATIVE)
SSN_INVALID = frozenset({"123456789", "987654321", "078051120", "219099999"})
"""Numbers the SSA never issued: sequences, and the two that famous misuse voided."""


def _ssn_score(m: re.Match[str]) -> float | None:
    area = m.group()[:3]
    if (area in ("000", "666") or area >= "900" or m["g"] == "00" or m["n"] == "0000"
            or area + m["g"] + m["n"] in SSN_INVALID):
        return None
    return {"-": 0.75, " ": 0.5, "": 0.2}[m["s"]]


NINO = re.compile(starting("[A-CEGHJ-PR-TW-Z]", r"\w") + r"[A-CEGHJ-NPR-TW-Z](?P<s>[ ]?)\d{2}"
                  r"(?P=s)\d{2}(?P=s)\d{2}(?P=s)[A-D](?!\w)")
NINO_CUES = Cues("national insurance|insurance|ni|nino", ID_NEGATIVE)


def _nino_score(m: re.Match[str]) -> float | None:
    if m.group()[:2] in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        return None
    return 0.9 if m["s"] else 0.75


INSEE = re.compile(number("[1-478]", r"(?P<s>[ .]?)(?P<yy>\d{2})(?P=s)(?P<mm>\d{2})(?P=s)"
                          r"(?P<dep>\d{2}|2[AB])(?P=s)(?P<rest>\d{3}(?P=s)\d{3})(?P=s)"
                          r"(?P<key>\d{2})"))
INSEE_CUES = Cues("sécurité sociale|securite sociale|sécu|secu|insee|nir|carte vitale"
                  "|social security|sozialversicherung")


def _insee_score(m: re.Match[str]) -> float | None:
    month = int(m["mm"])
    if not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
        return None
    dep = m["dep"].replace("2A", "19").replace("2B", "18")
    digits = int(m.group()[0] + m["yy"] + m["mm"] + dep + m["rest"].replace(m["s"], ""))
    return 0.97 if 97 - digits % 97 == int(m["key"]) else None




# --- IP addresses ----------------------------------------------------------------------------

IPV4 = re.compile(starting(r"\d", r"\w.\-") + r"\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
IPV6 = re.compile(starting("[0-9A-Fa-f:]", r"\w:.") + r"[0-9A-Fa-f:]{1,38}+(?![\w:]|\.\d)")
IP_CUES = Cues(
    "ip|ips|ipv4|ipv6|addr|address|host|server|client|from|connect|connected|connection|ping"
    "|ssh|login|gateway|dns|proxy|forwarded|remote|source|src|dst|peer|adresse",
    "version|ver|v|build|release|released|releases|fixed in|upgrade|upgraded|upgrades|update"
    "|updated|updates|patch|firmware|kernel|section|chapter|§|oid|isbn|chrome|firefox")


OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_VALID = re.compile(rf"{OCTET}(?:\.{OCTET}){{3}}")
"""Four numbers from 0 to 255, without leading zeros."""


def _ipv4_score(m: re.Match[str]) -> float | None:
    return 0.85 if IPV4_VALID.fullmatch(m.group()) else None


def _ipv6_score(m: re.Match[str]) -> float | None:
    if m.group().count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(m.group())
    except ValueError:
        return None
    # Two groups are an address when the first is long (fe80::1), not in C++'s A::B.
    groups = [g for g in m.group().split(":") if g]
    return 0.9 if len(groups) >= 3 or (len(groups) == 2 and len(groups[0]) >= 3) else None


COLON = cluster(r":(?<=[0-9A-Fa-f:]:)(?=[0-9A-Fa-f:])", 40)
"""IPv6 addresses hold a colon between hex digits or colons."""


def _ipv6s(text: str) -> Iterator[Span]:
    return scan(text, IPV6, "ip_address", _ipv6_score, IP_CUES, windows(text, COLON, 40, 48))


# --- date of birth ---------------------------------------------------------------------------

MONTH_NAMES = ("january february march april may june july august september october november "
               "december jan feb mar apr may jun jul aug sep oct nov dec janvier février mars "
               "avril mai juin juillet août septembre octobre novembre décembre januar februar "
               "märz april mai juni juli august september oktober november dezember")
MONTHS = {name: i % 12 + 1 for i, name in enumerate(MONTH_NAMES.split())} | {"sept": 9}
MONTH = r"[^\W\d_]{3,9}\.?"
DATE = (rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.\-]\d{{1,2}}[/.\-](?:\d{{4}}|\d{{2}})"
        rf"|\d{{1,2}}(?:st|nd|rd|th|er)?\.?\s{{1,2}}{MONTH}\s{{1,2}}\d{{4}}"
        rf"|{MONTH}\s{{1,2}}\d{{1,2}}(?:st|nd|rd|th)?,?\s{{1,2}}\d{{4}}")
BIRTH = re.compile(
    r"(?<!\w)(?:d\.?o\.?b\.?|date\s+of\s+birth|birth\s*date|birthday|born|n[ée]e?\s+le"
    r"|date\s+de\s+naissance|geboren(?:\s+am)?|geburtsdatum|geb\.)(?!\w)[^\d\n]{0,20}?"
    rf"(?P<v>{DATE})(?!\d)", re.IGNORECASE)


def _real_date(year: int, first: int, second: int) -> bool:
    """Whether year-first-second is a day in the past, either way round (d/m or m/d)."""
    if year < 100:
        year += 1900 if year > date.today().year % 100 else 2000
    for month, day in ((first, second), (second, first)):
        try:
            if year >= 1900 and date(year, month, day) <= date.today():
                return True
        except ValueError:
            pass
    return False


def _birth_score(m: re.Match[str]) -> float | None:
    found = m["v"]
    numbers = [int(n) for n in re.findall(r"\d+", found)]
    words = re.findall(r"[^\W\d_]{3,}", found)
    if words:
        month = MONTHS.get(words[0].lower().rstrip("."))
        if month is None or len(numbers) != 2:
            return None
        numbers = [numbers[1], month, numbers[0]]
    elif len(str(numbers[0])) == 4:
        numbers = [numbers[0], numbers[1], numbers[2]]
    else:
        numbers = [numbers[2], numbers[1], numbers[0]]
    return 0.95 if _real_date(*numbers) else None


# --- all of them -----------------------------------------------------------------------------

NUMBER_RULES: tuple[tuple[str, re.Pattern[str], Scorer, Cues | None], ...] = (
    *(("phone", pattern, scorer, PHONE_CUES) for pattern, scorer in PHONE_FORMATS),
    ("credit_card", CARD, _card_score, CARD_CUES),
    ("us_ssn", SSN, _ssn_score, SSN_CUES),
    ("uk_nino", NINO, _nino_score, NINO_CUES),
    ("fr_insee", INSEE, _insee_score, INSEE_CUES),
    ("ip_address", IPV4, _ipv4_score, IP_CUES),
)
"""The rules whose matches hold two digits in a row (or around a dot) within 8 characters
of their start, none more than 24 characters from the next, the last within 40 of the end."""
DIGITS = cluster(r"\d\.?\d", 24)
BIRTH_CUE = re.compile(r"[bBdDnNgG](?i:(?<=b)(?:irth|orn)|(?<=d)(?:ob|\.o\.b)"
                       r"|(?<=n)(?:aissance|[ée]e?\s)|(?<=g)eb(?:oren|urt|\.))")
"""The cue words of a birth date (case does not matter; the first letter comes first, as in
`starting`)."""


def _numbers(text: str) -> Iterator[Span]:
    near = windows(text, DIGITS, 8, 40)
    if near:
        yield from _ibans(text, near)
        for kind, pattern, scorer, cues in NUMBER_RULES:
            yield from scan(text, pattern, kind, scorer, cues, near)
        yield from scan(text, BIRTH, "date_of_birth", _birth_score, None,
                        windows(text, BIRTH_CUE, 24, 80))


FINDERS: tuple[Callable[[str], Iterable[Span]], ...] = (_emails, _numbers, _ipv6s)


def find_pii(text: str) -> list[Span]:
    """The personal data in `text`: spans sorted by start, none overlapping.

    Kinds: email, phone, iban, credit_card, us_ssn, uk_nino, fr_insee, ip_address,
    date_of_birth. Filter on `Span.score` (0.5 is a fair threshold) before redacting.

    Example:
        >>> text = "IBAN DE89 3704 0044 0532 0130 00, card 4111 1111 1111 1111"
        >>> [(text[s.start:s.end], s.kind) for s in find_pii(text)]
        [('DE89 3704 0044 0532 0130 00', 'iban'), ('4111 1111 1111 1111', 'credit_card')]
    """
    return select(span for finder in FINDERS for span in finder(text))
