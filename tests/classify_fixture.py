"""A small support-ticket dataset written for the tests: four labels, sixteen texts each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

TICKETS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my subscription this month.",
        "Why is there an extra fee on my invoice?",
        "Please refund the payment you took by mistake.",
        "My credit card was billed after I cancelled.",
        "Can I get a copy of last month's invoice?",
        "The price on my bill is higher than the plan I chose.",
        "How do I change the card you charge each month?",
        "I need a VAT receipt for my company's accounts.",
        "You took money from my account without asking.",
        "When will the refund reach my bank?",
        "The discount code was not applied to my order total.",
        "I want to switch to yearly billing to save money.",
        "Your invoice lists a product I never bought.",
        "Is there a charge for adding another user to the plan?",
        "My payment failed but the money left my account.",
        "Please stop the automatic renewal payment.",
    ],
    "bug": [
        "The app crashes every time I open the settings page.",
        "Clicking save does nothing and my changes are lost.",
        "The export button gives an error 500.",
        "Pictures don't load on the dashboard since the update.",
        "The search returns no results even for exact titles.",
        "I get a blank white screen after logging in.",
        "The page freezes when I upload a large file.",
        "Notifications arrive twice on my phone.",
        "The calendar shows the wrong time zone for my events.",
        "Dark mode makes the text invisible in the editor.",
        "Sync stopped working between my laptop and tablet.",
        "The chart on the report page is drawn upside down.",
        "Copy and paste breaks the formatting in comments.",
        "The mobile app logs me out every few minutes.",
        "Sorting the table by date puts March before January.",
        "An error message pops up when I try to print.",
    ],
    "account": [
        "I forgot my password and the reset email never comes.",
        "How do I change the email address on my account?",
        "Please delete my account and all my data.",
        "I want to turn on two-factor authentication.",
        "Someone else logged into my account, I think it was hacked.",
        "Can I change my username?",
        "How do I add a colleague to our team account?",
        "My account is locked after too many login attempts.",
        "I'd like to update my phone number in my profile.",
        "How can I merge my two accounts into one?",
        "Please transfer ownership of the workspace to my manager.",
        "Where do I download a copy of my personal data?",
        "I can't sign in with my Google login anymore.",
        "How do I remove a former employee's access?",
        "I want to close my account at the end of the month.",
        "The verification code for signing in is not arriving.",
    ],
    "shipping": [
        "My parcel has not arrived after two weeks.",
        "Can you tell me where my order is right now?",
        "The package arrived damaged and the box was crushed.",
        "Do you deliver to Norway?",
        "The tracking number you sent does not work.",
        "I received someone else's order by mistake.",
        "How long does express delivery take?",
        "Can I change the delivery address for my order?",
        "The courier left my package at the wrong house.",
        "Half of my order is missing from the box.",
        "How much does shipping to Canada cost?",
        "My delivery was marked as delivered but it never came.",
        "Can I pick up my order at a store instead?",
        "The parcel is stuck in customs, what should I do?",
        "I'd like to return the shoes, how do I send them back?",
        "Is there free shipping for orders over fifty euros?",
    ],
}
LABELS = tuple(TICKETS)


def split(test_per_label: int = 4) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test): the last `test_per_label` texts of each label are the test."""
    train = [(t, label) for label, texts in TICKETS.items() for t in texts[:-test_per_label]]
    test = [(t, label) for label, texts in TICKETS.items() for t in texts[-test_per_label:]]
    return train, test


def write_csv(path: Path, rows: list[tuple[str, str]] | list[tuple[str]],
              header: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
