"""BANKING77 for the classification benchmark: the train and test parts as (text, intent)
pairs, a seeded k-per-intent sampler, and the 77 intents grouped into 6 departments (with
the descriptions the teacher reads), as a bank would route its customers' messages.

The data is read in place from DATA/banking77 (see its SOURCE.md), never copied.

    python bench/classify_data.py [--data ../shared/data]   # checks the mapping, prints counts
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from common import DEFAULT_DATA

Pair = tuple[str, str]
"""(text, label)."""

DEPARTMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cards": (
        "ordering, delivery, linking and activating cards; virtual, disposable and spare "
        "cards; PIN; lost, stolen, compromised, expiring or ATM-kept cards; a card that "
        "does not work",
        ("card_arrival", "card_delivery_estimate", "order_physical_card", "get_physical_card",
         "getting_spare_card", "getting_virtual_card", "get_disposable_virtual_card",
         "disposable_card_limits", "virtual_card_not_working", "card_linking",
         "activate_my_card", "change_pin", "pin_blocked", "lost_or_stolen_card",
         "compromised_card", "card_about_to_expire", "card_swallowed", "card_not_working",
         "contactless_not_working", "card_acceptance", "visa_or_mastercard")),
    "card_payments": (
        "payments and refunds by card: declined, pending, reverted, duplicated or "
        "unrecognised payments, direct debits, card payment fees and exchange rates, extra "
        "charges on the statement",
        ("card_payment_fee_charged", "card_payment_not_recognised",
         "card_payment_wrong_exchange_rate", "declined_card_payment", "pending_card_payment",
         "reverted_card_payment?", "transaction_charged_twice", "request_refund",
         "Refund_not_showing_up", "direct_debit_payment_not_recognised",
         "extra_charge_on_statement")),
    "transfers": (
        "bank transfers in and out: sending and receiving money, salary, beneficiaries, "
        "transfer fees and timing, pending, failed, declined or cancelled transfers, "
        "transferred money not arrived",
        ("transfer_into_account", "receiving_money", "transfer_timing", "pending_transfer",
         "transfer_not_received_by_recipient", "balance_not_updated_after_bank_transfer",
         "failed_transfer", "declined_transfer", "cancel_transfer", "beneficiary_not_allowed",
         "transfer_fee_charged")),
    "top_ups": (
        "topping up (adding money to) the account by card, bank transfer, cash or cheque; "
        "which cards and currencies can top up; top-up fees, limits, automatic top-ups; "
        "pending, failed, reverted or unverified top-ups",
        ("topping_up_by_card", "top_up_by_card_charge", "top_up_by_bank_transfer_charge",
         "top_up_by_cash_or_cheque", "balance_not_updated_after_cheque_or_cash_deposit",
         "supported_cards_and_currencies", "automatic_top_up", "top_up_limits",
         "pending_top_up", "top_up_failed", "top_up_reverted", "verify_top_up")),
    "cash_withdrawals": (
        "ATMs and cash withdrawals: where to withdraw, withdrawal charges and exchange "
        "rates, declined, pending or unrecognised withdrawals, the wrong amount of cash",
        ("atm_support", "cash_withdrawal_charge", "wrong_exchange_rate_for_cash_withdrawal",
         "declined_cash_withdrawal", "pending_cash_withdrawal", "cash_withdrawal_not_recognised",
         "wrong_amount_of_cash_received")),
    "account": (
        "the account itself: identity verification, source of funds, personal details, "
        "passcode, lost phone, closing the account, supported countries, ages and "
        "currencies, exchange rates and exchange charges, Apple Pay and Google Pay",
        ("verify_my_identity", "why_verify_identity", "unable_to_verify_identity",
         "verify_source_of_funds", "edit_personal_details", "passcode_forgotten",
         "lost_or_stolen_phone", "terminate_account", "country_support", "age_limit",
         "fiat_currency_support", "exchange_rate", "exchange_via_app", "exchange_charge",
         "apple_pay_or_google_pay")),
}
"""department -> (description for the teacher, its intents)."""

DEPARTMENT_OF = {intent: name for name, (_, intents) in DEPARTMENTS.items()
                 for intent in intents}
DESCRIPTIONS = {name: description for name, (description, _) in DEPARTMENTS.items()}


def categories(data: Path = DEFAULT_DATA) -> list[str]:
    """The 77 intents, in categories.json's order; checks that each has one department."""
    intents = json.loads((data / "banking77" / "categories.json").read_text(encoding="utf-8"))
    listed = [i for _, group in DEPARTMENTS.values() for i in group]
    twice = sorted(i for i, n in Counter(listed).items() if n > 1)
    assert not twice, f"intents in two departments: {twice}"
    assert set(listed) == set(intents), (
        f"departments lack {sorted(set(intents) - set(listed))}, "
        f"name unknown {sorted(set(listed) - set(intents))}")
    return list(intents)


def load(part: str, data: Path = DEFAULT_DATA) -> list[Pair]:
    """`train` (10,003 pairs) or `test` (3,080): (text, intent) in file order."""
    path = data / "banking77" / f"{part}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def per_class(pairs: Sequence[Pair], k: int, seed: int) -> list[Pair]:
    """k pairs of each label (all of a label with fewer), drawn with `seed`, in file order."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(pairs):
        rows[label].append(i)
    rng = random.Random(seed)
    picked = sorted(i for label in sorted(rows) for i in
                    rng.sample(rows[label], min(k, len(rows[label]))))
    return [pairs[i] for i in picked]


def sample(pairs: Sequence[Pair], n: int, seed: int) -> list[Pair]:
    """n pairs drawn with `seed` (all if fewer), in file order."""
    if n >= len(pairs):
        return list(pairs)
    return [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), n))]


def to_departments(pairs: Sequence[Pair]) -> list[Pair]:
    return [(text, DEPARTMENT_OF[label]) for text, label in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    intents = categories(args.data)
    train, test = load("train", args.data), load("test", args.data)
    print(f"{len(intents)} intents; train {len(train)}, test {len(test)}")
    for part, pairs in (("train", train), ("test", test)):
        counts = Counter(label for _, label in to_departments(pairs))
        print(part, ", ".join(f"{name} {counts[name]}" for name in DEPARTMENTS))


if __name__ == "__main__":
    main()
