"""The look-alike verifier: each trap kind is rejected with its reason, paraphrases pass, facts are normalised."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cache.verify import LookalikeVerifier, VerifierConfig


@pytest.fixture(scope="module")
def verifier() -> LookalikeVerifier:
    return LookalikeVerifier()


TRAPS = [
    # (query, cached question, expected reason)
    ("How do I disable 2FA?", "How do I enable 2FA?", "antonym"),
    ("How do I remove a teammate?", "How do I add a teammate?", "antonym"),
    ("How do I uninstall the desktop app?", "How do I install the desktop app?", "antonym"),
    ("How do I download my photos?", "How do I upload my photos?", "antonym"),
    ("How do I turn off auto-renew?", "How do I turn on auto-renew?", "antonym"),
    ("How do I decrypt the backup?", "How do I encrypt the backup?", "antonym"),
    ("Should I eat before a workout?", "Should I eat after a workout?", "antonym"),
    ("How do I sell my shares?", "How do I buy shares?", "antonym"),
    ("How do I log out of the app?", "How do I log in to the app?", "antonym"),
    ("Is the pharmacy closed on holidays?", "Is the pharmacy open on holidays?", "antonym"),
    ("Why can't I reset my PIN?", "How do I reset my PIN?", "negation"),
    ("Is the museum not free on Sundays?", "Is the museum free on Sundays?", "negation"),
    ("Can I travel without a passport?", "Can I travel with a passport?", "negation"),
    ("Where is order 48231?", "Where is order 48213?", "number"),
    ("Is the Galaxy S23 waterproof?", "Is the Galaxy S24 waterproof?", "number"),
    ("Can three people share the room?", "Can two people share the room?", "number"),
    ("What is new in Java 21?", "What is new in Java 17?", "number"),
    ("What's the forecast for tomorrow?", "What's the forecast for today?", "date"),
    ("Is the clinic open on Saturday?", "Is the clinic open on Sunday?", "date"),
    ("Can we meet at 9 pm?", "Can we meet at 9 am?", "date"),
    ("Who won the league in 2021?", "Who won the league in 2022?", "date"),
    ("What is on next week?", "What is on this week?", "date"),
    ("What is the capital of Peru?", "What is the capital of Chile?", "name"),
    ("How do I host a site on Netlify?", "How do I host a site on Vercel?", "name"),
    ("How old is Serena Williams?", "How old is Venus Williams?", "name"),
    ("How do I save the chart as PNG?", "How do I save the chart as SVG?", "name"),
    ("How many kilometres is the trail?", "How many miles is the trail?", "unit"),
    ("What is 40 Fahrenheit in Celsius?", "What is 40 Celsius in Fahrenheit?", "unit"),
    ("Is 8 MB enough for the upload?", "Is 8 GB enough for the upload?", "unit"),
    ("What is the weekly limit?", "What is the daily limit?", "unit"),
    ("Do all rooms have a minibar?", "Do some rooms have a minibar?", "scope"),
    ("Can I archive only the read emails?", "Can I archive the read emails?", "scope"),
    ("Do both tickets include lounge access?", "Does either ticket include lounge access?", "scope"),
    ("Which plan has the least storage?", "Which plan has the most storage?", "comparative"),
    ("Is the train slower than the bus?", "Is the train faster than the bus?", "comparative"),
    ("Is rent higher downtown?", "Is rent lower downtown?", "comparative"),
    ("Why was the invoice sent?", "When was the invoice sent?", "question"),
    ("Is Go faster than Rust?", "Is Rust faster than Go?", "direction"),
    ("What is the EUR to USD rate?", "What is the USD to EUR rate?", "direction"),
    ("Is seat 14A a window seat?", "Is seat 14D a window seat?", "number"),
    ("What does Plan B include?", "What does Plan A include?", "name"),
    ("What causes low iron?", "What causes high iron?", "comparative"),
    ("Is the jacket in stock?", "Is the jacket out of stock?", "antonym"),
    ("Is the soda sugar-free?", "Is there sugar in the soda?", "antonym"),
    ("What is my net salary?", "What is my gross salary?", "antonym"),
    ("How do I lose weight?", "How do I gain weight?", "antonym"),
    ("What's 40 euros in pounds?", "What's 40 euros in dollars?", "unit"),
    ("Does the power bank hold 20000 mAh?", "Does the power bank hold 20000 Wh?", "unit"),
    ("Is the deposit non refundable?", "Is the deposit refundable?", "antonym"),  # a negating prefix
    # Modified and compound units are units of their own.
    ("What is 100 km in nautical miles?", "What is 100 km in miles?", "unit"),
    ("What is the speed of sound in meters per second?", "What is the speed of sound in mph?", "unit"),
    ("How fast is 30 m/s in km/h?", "How fast is 30 m/s in miles per hour?", "unit"),
    ("How much is 1 fluid ounce in ml?", "How much is 1 ounce in ml?", "unit"),
    ("How big is the flat in square feet?", "How big is the flat in square meters?", "unit"),
    # "How <adjective>" names what is asked.
    ("How big is Jupiter compared to the sun?", "How far is Jupiter from the sun?", "question"),
    ("How old is the Eiffel Tower?", "How tall is the Eiffel Tower?", "question"),
    ("How often should I water a cactus?", "How long should I water a cactus?", "question"),
    # Two words trade places around the word relating them: who does what to whom.
    ("Can my employer sue me for quitting?", "Can I sue my employer for quitting?", "direction"),
    ("Does the tenant pay the landlord for repairs?", "Does the landlord pay the tenant for repairs?", "direction"),
    ("What time is 9am Tokyo time in Paris?", "What time is 9am Paris time in Tokyo?", "direction"),
    ("Can cats catch fleas from dogs?", "Can dogs catch fleas from cats?", "direction"),
]


@pytest.mark.parametrize(("query", "cached", "reason"), TRAPS)
def test_look_alikes_are_rejected_with_their_reason(
    verifier: LookalikeVerifier, query: str, cached: str, reason: str
) -> None:
    assert verifier.compatible(query, cached) == (False, reason)
    assert verifier.compatible(cached, query)[0] is False  # symmetric verdict


PARAPHRASES = [
    ("How do I turn on two-factor authentication?", "How can I enable 2FA?"),
    ("how do i reset my password", "How do I reset my password?"),
    ("HOW DO I CANCEL MY PLAN", "How can I cancel my plan?"),
    ("Hi! Could you tell me how to change my email? Thanks", "How do I change my email address?"),
    ("I'm not sure how to export my contacts", "How do I export my contacts?"),
    ("Where is order 48,213?", "Where is order 48213?"),
    ("Can two people share the room?", "Can 2 people share the room?"),
    ("Is twenty-five dollars the fee?", "Is the fee $25?"),
    ("Can I upload 10k rows?", "Can I upload 10,000 rows?"),
    ("Is the meeting at 3pm?", "Is the meeting at 15:00?"),
    ("Is the meeting at noon?", "Is the meeting at 12 pm?"),
    ("Is the shop open on May 5?", "Is the shop open on 5 May?"),
    ("May I ask how refunds work?", "Can I ask how refunds work?"),
    ("How do I install docker on Ubuntu?", "How to install Docker on ubuntu"),
    ("Deploying to AWS from GitHub", "deploying from github to aws"),
    ("Does it run on Kubernets?", "Does it run on Kubernetes?"),
    ("Do you ship to Canada?", "Do you ship to Canadian addresses?"),
    ("What is the USA's population?", "What is the population of the United States?"),
    ("How do I download my data?", "Can I export my data?"),
    ("Why doesn't my laptop turn on?", "My laptop won't power on, why?"),
    ("How many km is a half marathon?", "A half marathon is how many kilometers?"),
    ("How many km is 5 miles?", "5 miles is how many kilometres?"),
    ("What's the daily calorie need?", "How many calories do I need per day?"),
    ("Which one should I choose?", "Which should I choose?"),
    ("How do I read a file one line at a time?", "How do I read a file line by line?"),
    ("Why is my app crashing when I open it?", "What makes my app crash on opening?"),
    ("Do all plans include support?", "Does every plan include support?"),
    ("What's the latest version?", "What is the newest version?"),
    ("How do I stop notifications?", "How do I turn off notifications?"),
    ("Is coding in C++ hard?", "Is C++ coding hard?"),
    ("Are there fees for ATMs abroad?", "Do you charge for ATM withdrawals overseas?"),
    ("How do I send a request with Node?", "How do I send a request in Node.js?"),
    ("What caused the fall of Rome?", "Why did Rome fall?"),
    ("How long is the flight?", "What is the flight duration?"),
    ("How do I group rows in pandas?", "How do I group rows of a DataFrame?"),
    ("How do I upgrade to 16GB of RAM?", "How do I upgrade to 16 GB of RAM?"),
    ("How long does a wire transfer take?", "How many days until a wire transfer arrives?"),
    ("How much time does identity verification take?", "How long does it take to verify my identity?"),
    ("How often should I feed my puppy?", "How many times a day should a puppy eat?"),
    ("How much sleep do teenagers need?", "How many hours should a teenager sleep?"),
    ("How old is the Eiffel Tower?", "When was the Eiffel Tower built?"),
    ("How tall is Mount Everest?", "How high is Mount Everest?"),
    ("What is 5 m/s in km/h?", "What is 5 meters per second in kilometres per hour?"),
    # Reordered, not role-swapped: the function words change with the word order.
    ("sphere volume formula", "What's the formula for the volume of a sphere?"),
    ("What's the difference between TCP and UDP?", "UDP vs TCP, what's the difference?"),
    ("How do I beat the final boss in Celeste?", "celeste final boss how to beat"),
    ("Is it better to rent or buy a house?", "buy or rent a house, which is better?"),
]


@pytest.mark.parametrize(("query", "cached"), PARAPHRASES)
def test_paraphrases_are_accepted(verifier: LookalikeVerifier, query: str, cached: str) -> None:
    assert verifier.compatible(query, cached) == (True, None)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("order 48,213", {"48213"}),
        ("two hundred and five users", {"205"}),
        ("twenty-five dollars", {"25"}),
        ("1.5 million rows", {"1500000"}),
        ("10k requests", {"10000"}),
        ("Python 3.10 vs 3.1", {"3.10", "3.1"}),
        ("version 1.2.3", {"1.2.3"}),
        ("the 21st floor", {"21"}),
        ("a dozen eggs", {"12"}),
        ("which one is it", set()),
        ("one of them", set()),
        ("charged twice", {"2"}),
        ("007", {"7"}),
        ("quick one: how do I log in", set()),
    ],
)
def test_numbers_are_normalised(verifier: LookalikeVerifier, text: str, numbers: set[str]) -> None:
    assert verifier.facts(text).numbers == numbers


def test_facts_expose_dates_units_and_names(verifier: LookalikeVerifier) -> None:
    facts = verifier.facts("Can I fly from Paris to Berlin on 2025-03-14 at 6:30 pm with 23 kg?")
    assert {"mar", "year:2025", "18:30"} <= facts.dates
    assert facts.units_with_number == frozenset({"kg"})
    assert facts.names == ("paris", "berlin")
    assert ("paris", "berlin") in facts.directions
    assert verifier.compatible(
        "Can I fly from Berlin to Paris on 2025-03-14 at 6:30 pm with 23 kg?",
        "Can I fly from Paris to Berlin on 2025-03-14 at 6:30 pm with 23 kg?",
    ) == (False, "direction")


def test_each_check_can_be_switched_off() -> None:
    pairs = {reason: (query, cached) for query, cached, reason in TRAPS}
    for reason, (query, cached) in pairs.items():
        field = {"antonym": "antonyms", "comparative": "comparatives", "date": "dates", "name": "names"}.get(
            reason, reason if reason in ("negation", "scope", "question", "direction") else reason + "s"
        )
        config = VerifierConfig.model_validate({field: False})
        ok, why = LookalikeVerifier(config).compatible(query, cached)
        assert why != reason, (reason, query, cached)
    assert LookalikeVerifier(VerifierConfig(enabled=False)).compatible("enable it", "disable it") == (True, None)


def test_config_forbids_unknown_fields_and_documents_every_field() -> None:
    with pytest.raises(ValidationError):
        VerifierConfig(numbrs=False)  # type: ignore[call-arg]
    assert all(field.description for field in VerifierConfig.model_fields.values())


def test_extra_names_and_antonyms_from_config() -> None:
    plain = LookalikeVerifier()
    custom = LookalikeVerifier(VerifierConfig(extra_names=["acmecloud", "zorbit"], extra_antonyms=[("gold", "silver")]))
    # Typed in lowercase, unknown product names are invisible without the config (the texts differ in more than
    # one word, so the single-substitution check does not see them either).
    assert plain.compatible("is acmecloud down right now", "is zorbit down?") == (True, None)
    assert custom.compatible("is acmecloud down right now", "is zorbit down?") == (False, "name")
    gold, silver = "What does the gold plan include?", "What is included in the silver plan?"
    assert plain.compatible(gold, silver)[0] is True
    assert custom.compatible(gold, silver) == (False, "antonym")


def test_a_single_swapped_content_word_is_a_substitution(verifier: LookalikeVerifier) -> None:
    swaps = [
        ("What's the space complexity of quicksort?", "What's the time complexity of quicksort?"),
        ("Does heat help a swollen knee?", "Does ice help a swollen knee?"),
        ("What's the process for breaking a lease early?", "What's the penalty for breaking a lease early?"),
        ("How much is a flight from New York to Tokyo?", "How long is the flight from New York to Tokyo?"),
        ("is acmecloud down", "is zorbit down"),
    ]
    for query, cached in swaps:
        assert verifier.compatible(query, cached) == (False, "substitution"), (query, cached)
    kept = [
        ("How do I reboot my router?", "How do I restart my router?"),  # a listed synonym
        ("Whats the diffrence between a list and a tuple?", "What's the difference between a list and a tuple?"),
        ("How do I delete my account?", "How do I remove my account?"),  # same pole of a polarity group
        ("How do I get dark mode?", "How do I enable dark mode?"),  # a light verb
        ("How do I export my contacts?", "How do I export the contacts?"),  # articles and possessives
    ]
    for query, cached in kept:
        assert verifier.compatible(query, cached) == (True, None), (query, cached)
    off = LookalikeVerifier(VerifierConfig(substitution=False))
    assert off.compatible(*swaps[0]) == (True, None)


def test_one_sided_polarity_is_left_to_the_threshold(verifier: LookalikeVerifier) -> None:
    # "set up" and "enable" agree; a word present on one side only is not a contradiction.
    assert verifier.compatible("How do I set up 2FA?", "How do I enable 2FA?") == (True, None)
    assert verifier.compatible("How do I get dark mode?", "How do I enable dark mode?") == (True, None)
    # But numbers, negation, dates and "only" must match even when one side lacks them.
    assert verifier.compatible("Where is my order?", "Where is order 48213?") == (False, "number")
    assert verifier.compatible("What's the weather?", "What's the weather tomorrow?") == (False, "date")


def test_facts_of_a_text_are_extracted_once(verifier: LookalikeVerifier) -> None:
    # Speed is measured by `tierserve cache eval --latency`, not asserted here; what the unit test pins is
    # the mechanism that makes a hot cached question cheap: its facts are memoised.
    first = verifier.facts("How do I enable 2FA on my account?")
    assert verifier.facts("How do I enable 2FA on my account?") is first
    assert LookalikeVerifier(cache_size=0).facts("How do I enable 2FA?") is not None


def test_role_swaps_are_not_searched_in_long_texts(verifier: LookalikeVerifier) -> None:
    # The pair search is quartic in length; a reordered long document must not stall a lookup.
    from cache.roles import MAX_WORDS, roles_swapped

    words = [f"word{i}" for i in range(MAX_WORDS)]
    short_a = "can my landlord sue me for breaking the lease"
    short_b = "can I sue my landlord for breaking the lease"
    assert roles_swapped(verifier.facts(short_a).sequence, verifier.facts(short_b).sequence) is not None
    long_a = f"{short_a} " + " ".join(words)
    long_b = f"{short_b} " + " ".join(words)
    assert roles_swapped(verifier.facts(long_a).sequence, verifier.facts(long_b).sequence) is None
