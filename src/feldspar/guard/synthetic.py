"""A seeded, labelled synthetic set of texts carrying PII and secrets, with hard negatives.

The texts are support emails, tickets, chat messages, forms, logs and config snippets in
English (a few in French and German). Every value is generated valid where the real thing
is (Luhn digit, IBAN and INSEE keys, SSN areas, NINO prefixes), in the formats people
write, and the texts mix in look-alikes that are not PII or secrets (order numbers, dates,
versions, ISBNs, UUIDs, git SHAs, prices, checksums, placeholders): their gold is no span.

Example:
    >>> from feldspar.guard.synthetic import make_pii_set
    >>> text, gold = make_pii_set(1, seed=3)[0]
    >>> all(text[a:b].strip() == text[a:b] for a, b, _ in gold)
    True
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from feldspar.guard.verdicts import Span

Gold = list[tuple[int, int, str]]
"""Gold spans of one text: (start, end, kind), end exclusive."""
Example = tuple[str, Gold]

Piece = tuple[str, str | None]
"""A slot's text, and its kind where it is PII or a secret (None for a look-alike)."""
Maker = Callable[[random.Random], list[Piece]]

FIRST = ("James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emily", "Daniel",
         "Olivia", "Chloé", "François", "Léa", "Jérôme", "Hélène", "Jürgen", "Lukas", "Anna",
         "Björn", "Sophie", "Mohammed", "Priya", "Wei", "Aisha", "Carlos", "Zoë")
LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Martin", "Bernard", "Dubois",
        "Lefèvre", "Müller", "Schmidt", "Schneider", "Weiß", "O'Brien", "Patel", "Nguyen",
        "García", "Rossi", "van Dijk", "Kowalski")
DOMAINS = ("gmail.com", "outlook.com", "yahoo.co.uk", "hotmail.fr", "orange.fr", "web.de",
           "gmx.de", "acme-corp.com", "mail.example.org", "contoso.co.uk", "company.io",
           "uni-heidelberg.de", "sub.dept.bigbank.com", "protonmail.ch")
CHARS62 = string.ascii_letters + string.digits
BASE32 = string.ascii_uppercase + "234567"
URLSAFE = CHARS62 + "-_"
B64 = CHARS62 + "+/"
MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December"),
          "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre"),
          "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                 "September", "Oktober", "November", "Dezember")}


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return _rand(rng, string.digits, n)


def _group(s: str, sizes: tuple[int, ...], sep: str) -> str:
    """Cut `s` into groups of the given sizes (the last one takes the rest)."""
    out, i = [], 0
    for size in sizes:
        out.append(s[i:i + size])
        i += size
    if i < len(s):
        out.append(s[i:])
    return sep.join(p for p in out if p)


def _ascii(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _tok(kind: str | None, make: Callable[[random.Random], str]) -> Maker:
    """A slot that `make` fills, labelled `kind`."""
    return lambda rng: [(make(rng), kind)]


def _none(make: Callable[[random.Random], str]) -> Maker:
    """A slot for a look-alike: no gold span."""
    return _tok(None, make)


# --- PII values ------------------------------------------------------------------------------

def email(rng: random.Random) -> list[Piece]:
    first, last = (_ascii(rng.choice(FIRST)).lower(),
                   _ascii(rng.choice(LAST)).lower().replace(" ", "").replace("'", ""))
    tag = rng.choice(["shop", "news"])
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}",
                        f"{first}_{last}", f"{last}.{first[0]}", f"{first}+{tag}", "support",
                        "billing", f"{first}.{last}{rng.randint(70, 99)}"])
    address = f"{local}@{rng.choice(DOMAINS)}"
    roll = rng.random()
    if roll < 0.1:
        address = address.upper()
    elif roll < 0.25:
        address = ".".join(p.capitalize() for p in address.split("."))
    return [(address, "email")]


def _us_phone(rng: random.Random) -> str:
    area = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
    exchange, line = f"{rng.randint(2, 9)}{_digits(rng, 2)}", _digits(rng, 4)
    return rng.choice([f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}",
                       f"{area}.{exchange}.{line}", f"{area} {exchange} {line}",
                       f"+1 {area} {exchange} {line}", f"+1 ({area}) {exchange}-{line}",
                       f"1-{area}-{exchange}-{line}", f"+1-{area}-{exchange}-{line}"])


def _fr_phone(rng: random.Random) -> str:
    number = f"{rng.choice('1234567999')}{_digits(rng, 8)}"
    sep = rng.choice([" ", " ", ".", "-"])
    return rng.choice([_group("0" + number, (2, 2, 2, 2, 2), sep),
                       "+33 " + _group(number, (1, 2, 2, 2, 2), " "),
                       "+33 (0)" + _group(number, (1, 2, 2, 2, 2), " "),
                       "0" + number])


def _uk_phone(rng: random.Random) -> str:
    london, mobile = "20" + _digits(rng, 8), "7" + _digits(rng, 9)
    city = rng.choice(["161", "121", "131", "141", "113"]) + _digits(rng, 7)
    return rng.choice([_group("0" + london, (3, 4), " "), _group("0" + city, (4, 3), " "),
                       _group("0" + mobile, (5,), " "), _group("0" + mobile, (5, 3), " "),
                       "+44 " + _group(london, (2, 4), " "),
                       "+44 (0)" + _group(london, (2, 4), " "),
                       "+44 " + _group(mobile, (4,), " "), "0" + mobile, "+44" + mobile])


def _de_phone(rng: random.Random) -> str:
    # National numbers (area code and subscriber) have 10 or 11 digits, mobiles 11.
    area = rng.choice(["30", "89", "40", "221", "69", "711", "151", "171", "160", "6221"])
    size = (11 if area[0] == "1" else rng.randint(9, 10)) - len(area)
    local = str(rng.randint(1, 9)) + _digits(rng, max(size, 7) - 1)
    return rng.choice([f"0{area} {local}", f"0{area}/{local}", f"(0{area}) {local}",
                       f"0{area}-{local}", f"+49 {area} {local}", f"+49 (0){area} {local}",
                       f"0049 {area} {local}", f"0{area} {local[:-4]} {local[-4:]}"])


def _other_phone(rng: random.Random) -> str:
    return rng.choice([f"+34 6{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}",
                       f"+39 06 {_digits(rng, 4)} {_digits(rng, 4)}",
                       f"+31 6 {_digits(rng, 8)}", f"+41 44 {_digits(rng, 3)} {_digits(rng, 2)} "
                       f"{_digits(rng, 2)}", f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}",
                       f"+61 2 {_digits(rng, 4)} {_digits(rng, 4)}",
                       f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}"])


def phone(rng: random.Random) -> list[Piece]:
    make = rng.choice([_us_phone, _us_phone, _fr_phone, _uk_phone, _de_phone, _other_phone])
    return [(make(rng), "phone")]


IBAN_BBAN: dict[str, tuple[tuple[str, int], ...]] = {
    "DE": (("n", 18),), "FR": (("n", 10), ("c", 11), ("n", 2)), "GB": (("a", 4), ("n", 14)),
    "ES": (("n", 20),), "IT": (("a", 1), ("n", 10), ("c", 12)), "NL": (("a", 4), ("n", 10)),
    "BE": (("n", 12),), "CH": (("n", 5), ("c", 12)), "AT": (("n", 16),), "PL": (("n", 24),)}


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits that make `country`+digits+`bban` pass ISO 13616 mod 97."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def _bban(rng: random.Random, country: str) -> str:
    alphabets = {"n": string.digits, "a": string.ascii_uppercase,
                 "c": string.digits * 3 + string.ascii_uppercase}
    return "".join(_rand(rng, alphabets[k], n) for k, n in IBAN_BBAN[country])


def _format_iban(rng: random.Random, raw: str) -> str:
    return _group(raw, (4,) * 8, " ") if rng.random() < 0.6 else raw


def iban(rng: random.Random) -> list[Piece]:
    country = rng.choice(list(IBAN_BBAN))
    bban = _bban(rng, country)
    return [(_format_iban(rng, country + iban_check_digits(country, bban) + bban), "iban")]


def bad_iban(rng: random.Random) -> list[Piece]:
    """An IBAN with a typo: the checksum fails."""
    country = rng.choice(list(IBAN_BBAN))
    bban = _bban(rng, country)
    check = int(iban_check_digits(country, bban))
    return [(_format_iban(rng, f"{country}{(check + rng.randint(1, 9)) % 97 + 2:02d}{bban}"),
             None)]


def luhn_digit(partial: str) -> str:
    """The digit that makes `partial` + digit pass the Luhn check."""
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


CARD_ISSUERS = (("4", 16), ("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16),
                ("2221", 16), ("2720", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16),
                ("36", 14), ("3528", 16), ("3589", 16), ("4", 13), ("62", 19))


def _card_digits(rng: random.Random, valid: bool) -> str:
    prefix, length = rng.choice(CARD_ISSUERS)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    check = luhn_digit(body)
    return body + (check if valid else str((int(check) + rng.randint(1, 9)) % 10))


def _format_card(rng: random.Random, digits: str) -> str:
    sizes = {15: (4, 6), 14: (4, 6)}.get(len(digits), (4, 4, 4, 4))
    return rng.choice([_group(digits, sizes, " "), _group(digits, sizes, " "),
                       _group(digits, sizes, "-"), digits])


def credit_card(rng: random.Random) -> list[Piece]:
    return [(_format_card(rng, _card_digits(rng, True)), "credit_card")]


def bad_card(rng: random.Random) -> list[Piece]:
    """A 13-19 digit number formatted like a card whose Luhn check fails."""
    return [(_format_card(rng, _card_digits(rng, False)), None)]


def us_ssn(rng: random.Random) -> list[Piece]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    sep = rng.choice(["-"] * 8 + [" "])
    return [(_group(digits, (3, 2), sep), "us_ssn")]


NINO_FIRST, NINO_SECOND = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"


def uk_nino(rng: random.Random) -> list[Piece]:
    prefix = "BG"
    while prefix in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
    raw = prefix + _digits(rng, 6) + rng.choice("ABCD")
    return [(_group(raw, (2, 2, 2, 2), " ") if rng.random() < 0.5 else raw, "uk_nino")]


def insee_key(number: str) -> str:
    """The 2-digit key of a 13-character French NIR (Corsica's 2A/2B count as 19/18)."""
    return f"{97 - int(number.upper().replace('2A', '19').replace('2B', '18')) % 97:02d}"


def fr_insee(rng: random.Random) -> list[Piece]:
    dept = rng.choice([f"{rng.randint(1, 95):02d}"] * 9 + ["2A", "2B"])
    number = (f"{rng.randint(1, 2)}{_digits(rng, 2)}{rng.randint(1, 12):02d}{dept}"
              f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}")
    raw = number + insee_key(number)
    return [(_group(raw, (1, 2, 2, 2, 3, 3), " ") if rng.random() < 0.6 else raw, "fr_insee")]


def _ipv6(rng: random.Random) -> str:
    groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
    zeros = rng.randint(0, 3)
    start = rng.randint(1, 8 - zeros) if zeros else 0
    groups[start:start + zeros] = [0] * zeros
    groups[0] = rng.choice([0x2001, 0x2a02, 0xfe80, 0x2600, groups[0] | 0x2000])
    address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
    return rng.choice([address.compressed, address.compressed, address.exploded])


def ip_address(rng: random.Random) -> list[Piece]:
    v4 = rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                     f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                     ".".join(str(rng.randint(1, 223)) for _ in range(2)) + "."
                     + ".".join(str(rng.randint(0, 255)) for _ in range(2))])
    return [(v4 if rng.random() < 0.7 else _ipv6(rng), "ip_address")]


def _date(rng: random.Random, lang: str, years: tuple[int, int]) -> str:
    y, m, d = rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28)
    month = MONTHS[lang][m - 1]
    if lang == "fr":
        return rng.choice([f"{d:02d}/{m:02d}/{y}", f"{d} {month} {y}"])
    if lang == "de":
        return rng.choice([f"{d:02d}.{m:02d}.{y}", f"{d}. {month} {y}"])
    return rng.choice([f"{m:02d}/{d:02d}/{y}", f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}",
                       f"{month} {d}, {y}", f"{d} {month} {y}", f"{m}/{d}/{y % 100:02d}",
                       f"{d:02d}.{m:02d}.{y}"])


def _dob(lang: str) -> Maker:
    return _tok("date_of_birth", lambda rng: _date(rng, lang, (1940, 2006)))


# --- PII look-alikes ---------------------------------------------------------------------------

def _order(rng: random.Random) -> str:
    return rng.choice([f"#{rng.randint(10000, 99999999)}", f"ORD-{rng.randint(2019, 2025)}-"
                       f"{_digits(rng, 6)}", f"A-{_digits(rng, 5)}", f"INV-{_digits(rng, 6)}",
                       f"45{_digits(rng, 8)}", f"{_digits(rng, 3)}-{_digits(rng, 7)}-"
                       f"{_digits(rng, 7)}", f"1Z{_rand(rng, BASE32, 6)}{_digits(rng, 10)}",
                       _group("94" + _digits(rng, 20), (4,) * 5, " ")])


def _time(rng: random.Random) -> str:
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    return rng.choice([f"{h:02d}:{m:02d}", f"{h:02d}:{m:02d}:{rng.randint(0, 59):02d}",
                       f"{h % 12 + 1}:{m:02d} {rng.choice(['am', 'pm'])}"])


def _version(rng: random.Random) -> str:
    parts = [str(rng.randint(0, 20)) for _ in range(rng.choice([2, 3, 4, 4]))]
    return rng.choice(["v", "", ""]) + ".".join(parts)


def _isbn(rng: random.Random) -> str:
    core = "978" + _digits(rng, 9)
    check = str((10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(core)) % 10) % 10)
    raw = core + check
    return rng.choice([raw, f"{raw[:3]}-{raw[3]}-{raw[4:6]}-{raw[6:12]}-{raw[12]}"])


def _uuid(rng: random.Random) -> str:
    h = _rand(rng, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


def _sha(rng: random.Random) -> str:
    return _rand(rng, "0123456789abcdef", rng.choice([7, 40, 40]))


def _price(rng: random.Random) -> str:
    euros, cents = rng.randint(1, 9999), rng.randint(0, 99)
    return rng.choice([f"${euros:,}.{cents:02d}", f"€{euros}.{cents:02d}",
                       f"{euros:,} €".replace(",", " "), f"£{euros}.{cents:02d}",
                       f"USD {euros * 100:,}.00", f"{euros},{cents:02d} EUR"])


def _digit_run(rng: random.Random) -> str:
    return _digits(rng, rng.choice([6, 8, 9, 10, 11, 12, 15, 16, 18, 20]))


PII_MAKERS: dict[str, Maker] = {
    "email": email, "phone": phone, "phone_fr": _tok("phone", _fr_phone),
    "phone_de": _tok("phone", _de_phone), "phone_uk": _tok("phone", _uk_phone), "iban": iban,
    "card": credit_card, "ssn": us_ssn, "nino": uk_nino, "insee": fr_insee, "ip": ip_address,
    "dob": _dob("en"),
    "dob_fr": _dob("fr"), "dob_de": _dob("de"), "bad_iban": bad_iban, "bad_card": bad_card,
    "name": _none(_name), "order": _none(_order), "time": _none(_time),
    "version": _none(_version), "isbn": _none(_isbn), "uuid": _none(_uuid), "sha": _none(_sha),
    "price": _none(_price), "digits": _none(_digit_run),
    "date": _none(lambda rng: _date(rng, "en", (2015, 2025))),
    "date_fr": _none(lambda rng: _date(rng, "fr", (2015, 2025))),
    "date_de": _none(lambda rng: _date(rng, "de", (2015, 2025))),
}

PII_TEMPLATES = (
    # customer-support emails and tickets
    "Hi, I'm writing about order {order} placed on {date}. You can reach me at {phone} or "
    "{email}.",
    "Hello team,\nplease update my contact email to {email} (old one: {email}).\nThanks, {name}",
    "Ticket {order}: customer {name} <{email}> reports that card {card} was declined at {time}.",
    "Refund of {price} for invoice {order} should go to IBAN {iban}, account holder {name}.",
    "Please wire the {price} to {iban} before {date}.",
    "My IBAN is {iban}", "{iban} is the account to use for the refund.",
    "Card number: {card}\nExpiry: 08/27\nName on card: {name}",
    "I paid with my Visa {card} but was charged {price} twice.",
    "{card}",
    "The customer's card {bad_card} failed the check, please ask for the number again.",
    "Transfer rejected: IBAN {bad_iban} is not valid.",
    "Call me on {phone} after {time}.", "Mobile: {phone}", "tel. {phone}",
    "{name}\nSenior Buyer, Acme Corp\n{phone}\n{email}",
    "{phone} - ask for {name}", "Best,\n{name} | {phone}",
    "you can text me at {phone}, I'm on call until {time}",
    "SSN: {ssn}\nDOB: {dob}\nPhone: {phone}",
    "My social security number is {ssn}, date of birth {dob}.",
    "Applicant {name}, born on {dob}, SSN {ssn}, requests access.",
    "National Insurance number: {nino}",
    "NI number {nino} for {name}, please update payroll. Phone {phone_uk}.",
    "Employee {name} ({nino}) started on {date}.",
    "Failed login for {email} from {ip} at {time}.",
    "{date} {time} WARN rate limit exceeded for client {ip} (request {uuid})",
    "ssh admin@{ip} -p 2222", "The server at {ip} is down since {time}.",
    "X-Forwarded-For: {ip}", "{ip} - - [{date}] \"GET /health HTTP/1.1\" 200",
    "Upgraded to version {version} on {date}; build {sha}.",
    "Fixed in {version} (commit {sha}), see ISBN {isbn} for the manual.",
    "Order {order} shipped on {date} for {price}, tracking {order}.",
    "Your verification code is {digits}.", "Reference: {digits} / {uuid}",
    "Meeting moved to {date} at {time}, room {digits}.",
    "Date of birth: {dob}", "DOB {dob}", "I was born {dob} in Leeds.",
    "{email}", "Contact: {email}.", "Reply to {email}, cc {email}", "mailto:{email}",
    "Patient {name}, DOB: {dob}, phone {phone}, email {email}",
    # French and German
    "Bonjour, mon numéro est le {phone_fr}, et mon IBAN {iban}. Cordialement, {name}",
    "Numéro de sécurité sociale : {insee}, née le {dob_fr}.",
    "Mon numéro de sécu est {insee}, merci de mettre à jour mon dossier.",
    "Commande {order} du {date_fr} : montant {price}.",
    "Hallo, bitte rufen Sie mich unter {phone_de} an. Meine IBAN lautet {iban}.",
    "Geburtsdatum: {dob_de}, Telefon: {phone_de}", "Bestellung {order} vom {date_de}, {price}.",
)


# --- secrets ---------------------------------------------------------------------------------

def _aws_id(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + _rand(rng, BASE32, 16)


def _jwt(rng: random.Random) -> str:
    def part(obj: Mapping[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": _digits(rng, 8), "name": _name(rng),
               "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    return f"{part(header)}.{part(payload)}.{_rand(rng, URLSAFE, rng.choice([43, 86, 342]))}"


def _pem(rng: random.Random) -> str:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                        "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
    lines = [_rand(rng, B64, 64) for _ in range(rng.randint(4, 25))] + [_rand(rng, B64, 20)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


def _password(rng: random.Random) -> str:
    word = rng.choice(["Summer", "dragon", "Monkey", "sunshine", "Passw0rd", "letmein",
                       "Tr0ub4dor", "qwerty", "Hunter", "Winter", "Football"])
    return rng.choice([f"{word}{rng.randint(1, 2025)}{rng.choice('!?#$')}",
                       _rand(rng, CHARS62 + "!#%&*", rng.randint(10, 20)),
                       f"{word.lower()}-{_rand(rng, string.ascii_lowercase, 5)}-"
                       f"{rng.randint(10, 99)}",
                       _rand(rng, CHARS62, 16)])


def _generic(rng: random.Random) -> str:
    return rng.choice([_rand(rng, "0123456789abcdef", 32), _rand(rng, CHARS62, 32),
                       _rand(rng, B64, 40) + "=", _rand(rng, URLSAFE, 43),
                       _rand(rng, CHARS62, 24)])


def _userinfo(rng: random.Random) -> list[Piece]:
    scheme = rng.choice(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp",
                         "https", "ftp"])
    user = rng.choice(["app", "admin", "svc_backend", "deploy", _ascii(rng.choice(FIRST)).lower()])
    host = rng.choice(["db.internal:5432/prod", "10.0.3.7:3306/shop", "cluster0.ab1cd.mongodb.net",
                       "cache.local:6379/0", "github.com/acme/infra.git", "files.example.com"])
    password = rng.choice([_rand(rng, CHARS62 + "-_.~!*", rng.randint(8, 24)), _password(rng)])
    password = password.translate(str.maketrans("#?/", "-_."))
    return [(f"{scheme}://", None), (f"{user}:{password}", "url_credentials"),
            (f"@{host}", None)]


SECRET_MAKERS: dict[str, Maker] = {
    "aws_id": _tok("aws_access_key", _aws_id),
    "aws_secret": _tok("aws_secret_key", lambda rng: _rand(rng, B64, 40)),
    "github": _tok("github_token", lambda rng: rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"])
                   + _rand(rng, CHARS62, 36)),
    "github_pat": _tok("github_token", lambda rng: "github_pat_" + _rand(rng, CHARS62, 22) + "_"
                       + _rand(rng, CHARS62, 59)),
    "slack": _tok("slack_token", lambda rng: rng.choice([
        f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-{_rand(rng, CHARS62, 24)}",
        f"xoxp-{_digits(rng, 12)}-{_digits(rng, 12)}-{_digits(rng, 13)}-"
        f"{_rand(rng, '0123456789abcdef', 32)}"])),
    "openai": _tok("openai_api_key", lambda rng: rng.choice([
        f"sk-{_rand(rng, CHARS62, 20)}T3BlbkFJ{_rand(rng, CHARS62, 20)}",
        f"sk-proj-{_rand(rng, URLSAFE, 74)}T3BlbkFJ{_rand(rng, URLSAFE, 74)}",
        f"sk-{_rand(rng, CHARS62, 48)}"])),
    "anthropic": _tok("anthropic_api_key",
                      lambda rng: f"sk-ant-api03-{_rand(rng, URLSAFE, 93)}AA"),
    "google": _tok("google_api_key", lambda rng: "AIza" + _rand(rng, URLSAFE, 35)),
    "stripe": _tok("stripe_key", lambda rng: rng.choice(["sk_live_", "rk_live_"])
                   + _rand(rng, CHARS62, rng.choice([24, 99]))),
    "jwt": _tok("jwt", _jwt), "pem": _tok("private_key", _pem),
    "password": _tok("password_assignment", _password),
    "generic": _tok("generic_secret", _generic), "userinfo": _userinfo,
    "pem_json": _tok("private_key", lambda rng: _pem(rng).replace("\n", "\\n")),
    "basic": _tok("generic_secret", lambda rng: base64.b64encode(
        f"{_ascii(rng.choice(FIRST)).lower()}:{_password(rng)}".encode()).decode()),
    "b64password": _tok("password_assignment",
                        lambda rng: base64.b64encode(_password(rng).encode()).decode()),
    "name": _none(_name), "sha": _none(_sha), "uuid": _none(_uuid),
    "sha256": _none(lambda rng: _rand(rng, "0123456789abcdef", 64)),
    "integrity": _none(lambda rng: "sha512-" + _rand(rng, B64, 86) + "=="),
    "image": _none(lambda rng: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"
                   + _rand(rng, B64, rng.randint(60, 400)) + "="),
    "placeholder": _none(lambda rng: rng.choice([
        "changeme", "<your-api-key>", "${SECRET_TOKEN}", "xxxxxxxxxxxxxxxx", "********",
        "YOUR_API_KEY_HERE", "{{ db_password }}", "<password>", "$API_KEY", "password",
        "os.environ['API_KEY']", "process.env.TOKEN", "your-secret-here", "TODO",
        "sk-...", "dummy", "example"])),
    "pubkey": _none(lambda rng: rng.choice([
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + _rand(rng, B64, 43) + " dev@laptop",
        "-----BEGIN PUBLIC KEY-----\n" + "\n".join(_rand(rng, B64, 64) for _ in range(6))
        + "\n-----END PUBLIC KEY-----"])),
    "number": _none(lambda rng: str(rng.choice([256, 512, 1024, 4096, 8192]))),
    "url": _none(lambda rng: rng.choice(["https://example.com/docs?page=2",
                                         "https://user@git.example.com/repo.git",
                                         "postgres://app:${DB_PASSWORD}@db:5432/app"])),
}

SECRET_TEMPLATES = (
    "AWS_ACCESS_KEY_ID={aws_id}\nAWS_SECRET_ACCESS_KEY={aws_secret}\nAWS_REGION=eu-west-1",
    "[default]\naws_access_key_id = {aws_id}\naws_secret_access_key = {aws_secret}",
    "why does boto3 say access denied? I'm using {aws_id} in us-east-1",
    "curl -H \"Authorization: Bearer {github}\" https://api.github.com/user",
    "git clone {userinfo}", "export GITHUB_TOKEN={github_pat}",
    "my token {github} stopped working after {sha}, any idea?",
    "SLACK_BOT_TOKEN={slack}", "slack:\n  token: \"{slack}\"\n  channel: \"#alerts\"",
    "client = OpenAI(api_key=\"{openai}\")", "Here is my key {openai} can you check why it fails",
    "OPENAI_API_KEY={openai}", "export ANTHROPIC_API_KEY={anthropic}",
    "anthropic.Anthropic(api_key='{anthropic}')", "const key = \"{google}\";",
    "https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key={google}",
    "STRIPE_SECRET_KEY={stripe}", "stripe.api_key = \"{stripe}\"",
    "Authorization: Bearer {jwt}", "the session cookie is {jwt}, it expires too soon",
    "Here is the deploy key:\n{pem}\nplease add it to the server.", "{pem}",
    "password = \"{password}\"", "DB_PASSWORD={password}", "  password: '{password}'",
    "spring.datasource.password={password}", "\"pwd\": \"{password}\",",
    "SECRET_TOKEN={generic}", "client_secret: \"{generic}\"", "export API_KEY={generic}",
    "\"apiKey\": \"{generic}\"", "auth_token = '{generic}'",
    "DATABASE_URL={userinfo}", "redis_url: \"{userinfo}\"",
    "the wifi password is {password}", "my password is {password} btw, can you log in?",
    "Le mot de passe est {password}", "Das Passwort lautet {password}",
    "pg_dump --password={password} prod > dump.sql", "vpn connect --password {password}",
    "{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"{sha}\",\n  \"private_key\": "
    "\"{pem_json}\\n\",\n  \"client_email\": \"svc@proj.iam.gserviceaccount.com\"\n}",
    "Authorization: Basic {basic}", "X-Api-Key: {generic}",
    "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: {password}",
    "kind: Secret\ndata:\n  password: {b64password}",
    # look-alikes
    "commit {sha}\nAuthor: {name}\n\n    fix tokenizer padding", "request_id: {uuid}",
    "\"integrity\": \"{integrity}\",", "checksum = \"{sha256}\"", "sha256:{sha256}  model.gguf",
    "<img src=\"{image}\">", "password = \"{placeholder}\"", "API_KEY={placeholder}",
    "api_key: {placeholder}", "token = {placeholder}", "SECRET_TOKEN={placeholder}",
    "Add this to authorized_keys: {pubkey}", "max_tokens={number}, context 4096",
    "token_count: {number}", "See {url} for details.", "image: ghcr.io/acme/api@sha256:{sha256}",
    "The password is incorrect, please try again.", "Password must be at least {number} long.",
    "Forgot your password? Reset it at {url}", "api_key=None", "a password is required",
)


# --- assembly --------------------------------------------------------------------------------

SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, makers: dict[str, Maker], rng: random.Random,
          text: list[str], gold: Gold, offset: int) -> int:
    """Append `template` with its slots filled to `text`; return the new offset."""
    last = 0
    for m in SLOT.finditer(template):
        pieces = [(template[last:m.start()], None), *makers[m.group(1)](rng)]
        for piece, kind in pieces:
            if kind is not None:
                gold.append((offset, offset + len(piece), kind))
            text.append(piece)
            offset += len(piece)
        last = m.end()
    text.append(template[last:])
    return offset + len(template) - last


def _make_set(n: int, seed: int, templates: tuple[str, ...],
              makers: dict[str, Maker]) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    for _ in range(n):
        text: list[str] = []
        gold: Gold = []
        offset = 0
        for i in range(rng.choice([1, 1, 2, 3])):
            if i:
                # Sentences run on after a full stop; anything else starts a new line.
                ended = "".join(text[-2:]).endswith((".", "!", "?"))
                sep = rng.choice([" ", "\n", "\n\n"]) if ended else "\n"
                text.append(sep)
                offset += len(sep)
            offset = _fill(rng.choice(templates), makers, rng, text, gold, offset)
        out.append(("".join(text), gold))
    return out


def make_pii_set(n: int, seed: int) -> list[Example]:
    """`n` texts with their gold PII spans, the same for the same seed."""
    return _make_set(n, seed, PII_TEMPLATES, PII_MAKERS)


def make_secret_set(n: int, seed: int) -> list[Example]:
    """`n` texts with their gold secret spans, the same for the same seed."""
    return _make_set(n, seed, SECRET_TEMPLATES, SECRET_MAKERS)


# --- scoring a finder against the gold -------------------------------------------------------

@dataclass
class Tally:
    """Span-level counts for one kind: a predicted span is right when it has the kind of a
    gold span and covers at least half of it; a gold span is found when a right one does."""

    right: int = 0
    predicted: int = 0
    found: int = 0
    gold: int = 0

    @property
    def precision(self) -> float:
        return self.right / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _covers(span: tuple[int, int, str], gold: tuple[int, int, str]) -> bool:
    overlap = min(span[1], gold[1]) - max(span[0], gold[0])
    return span[2] == gold[2] and overlap * 2 >= gold[1] - gold[0]


def tally(examples: list[Example], find: Callable[[str], list[Span]],
          threshold: float = 0.5) -> dict[str, Tally]:
    """Counts per kind, and over all kinds under "all", of `find`'s spans scoring at least
    `threshold` against the gold spans of `examples`."""
    out: dict[str, Tally] = {}
    for text, gold in examples:
        spans = [(s.start, s.end, s.kind) for s in find(text) if s.score >= threshold]
        for kind in {k for *_, k in gold} | {k for *_, k in spans}:
            t = out.setdefault(kind, Tally())
            mine = [s for s in spans if s[2] == kind]
            theirs = [g for g in gold if g[2] == kind]
            t.predicted += len(mine)
            t.gold += len(theirs)
            t.right += sum(any(_covers(s, g) for g in theirs) for s in mine)
            t.found += sum(any(_covers(s, g) for s in mine) for g in theirs)
    total = Tally()
    for t in out.values():
        total.right += t.right
        total.predicted += t.predicted
        total.found += t.found
        total.gold += t.gold
    return {**dict(sorted(out.items())), "all": total}
