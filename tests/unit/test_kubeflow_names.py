"""Kubeflow job, Secret and label names: valid, deterministic and collision-free for any id."""

from __future__ import annotations

import random
import string

import pytest

from kubesweep_dispatcher.platforms.kubeflow import names

# Alphabets an id might come from: kubesweep's own, NNI's mixed-case trial ids, user ids
# with underscores and dots, and unicode.
ALPHABETS = (
    string.ascii_lowercase + string.digits,
    string.ascii_letters + string.digits,
    string.ascii_letters + string.digits + "_-.",
    "aé-ß_日本語😀Z ",
    string.printable,
)

ADVERSARIAL = [
    "",
    "-",
    "--",
    "_",
    "A",
    "UPPER",
    "a_b",
    "a-b",
    "a--b",
    "1abc",
    "x" * 200,
    "Ä" * 70,
    "日本語",
    "😀",
    "ks",
    "storage",
    "token",
    "a.b",
    "a b",
    "a/b",
    "$(HOME)",
]


def random_id(rng: random.Random) -> str:
    alphabet = rng.choice(ALPHABETS)
    return "".join(rng.choices(alphabet, k=rng.choice((1, 5, 8, 32, 40, 90))))


def id_tuples(count: int, seed: int = 20240607) -> set[tuple[str, str, int]]:
    rng = random.Random(seed)
    found = {(random_id(rng), random_id(rng), rng.choice((1, 1, 2, 3, 17))) for _ in range(count)}
    found |= {(e, t, a) for e in ADVERSARIAL for t in ADVERSARIAL for a in (1, 2)}
    return found


def test_readable_names_for_kubesweep_ids() -> None:
    assert names.job_name("lnjmikx3", "xxnec") == "ks-lnjmikx3-xxnec"
    assert names.job_name("lnjmikx3", "xxnec", 2) == "ks-lnjmikx3-xxnec-2"
    assert names.token_secret_name("lnjmikx3", "xxnec") == "ks-lnjmikx3-xxnec-token"
    assert names.storage_secret_name("lnjmikx3") == "ks-lnjmikx3-storage"
    assert names.registry_secret_name("lnjmikx3", "worker") == "ks-lnjmikx3-registry-worker"


def test_job_names_are_valid_and_leave_room_for_the_operator_suffix() -> None:
    for exp, trial, attempt in id_tuples(4000):
        name = names.job_name(exp, trial, attempt)
        assert names.is_dns1035_label(name), (exp, trial, attempt, name)
        assert len(name) <= names.MAX_JOB_NAME
        # The operator names each replica's pod and Service <job>-<type>-<index>.
        assert names.is_dns1035_label(f"{name}-evaluator-9999")
        assert name == names.job_name(exp, trial, attempt)  # deterministic


def test_different_ids_never_share_a_job_name() -> None:
    seen: dict[str, tuple[str, str, int]] = {}
    for key in id_tuples(10000):
        name = names.job_name(*key)
        assert seen.setdefault(name, key) == key, f"{key} and {seen[name]} both give {name}"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a-b", "c", 1), ("a", "b-c", 1)),  # the separator moves between the ids
        (("a", "B", 1), ("a", "b", 1)),  # NNI lower-cases and collides
        (("a_b", "c", 1), ("a-b", "c", 1)),  # sanitising maps both to a-b
        (("e", "t-2", 1), ("e", "t", 2)),  # an attempt suffix spelled into the id
        (("e", "x" * 100 + "1", 1), ("e", "x" * 100 + "2", 1)),  # same truncated prefix
        (("é", "t", 1), ("e", "t", 1)),
    ],
)
def test_adversarial_pairs_do_not_collide(
    one: tuple[str, str, int], other: tuple[str, str, int]
) -> None:
    assert names.job_name(*one) != names.job_name(*other)
    assert names.token_secret_name(*one) != names.token_secret_name(*other)


def test_hashed_names_keep_a_readable_slug() -> None:
    name = names.job_name("My_Experiment", "Trial_7")
    assert name.startswith("ks-my-experiment-trial-7--")
    assert names.job_name("日本語", "😀").startswith("ks--")


def test_secret_names_are_valid_and_distinct_across_kinds() -> None:
    seen: dict[str, tuple[str, ...]] = {}
    for exp, trial, attempt in id_tuples(3000):
        for key, name in (
            (("token", exp, trial, str(attempt)), names.token_secret_name(exp, trial, attempt)),
            (("storage", exp), names.storage_secret_name(exp)),
            (("registry", exp, "worker"), names.registry_secret_name(exp, "worker")),
            (("registry", exp, "ps"), names.registry_secret_name(exp, "ps")),
        ):
            assert names.is_dns1123_subdomain(name), (key, name)
            assert seen.setdefault(name, key) == key, f"{key} and {seen[name]} both give {name}"


def test_label_values_are_valid_identity_when_possible_and_distinct() -> None:
    rng = random.Random(7)
    ids = {random_id(rng) for _ in range(5000)} | set(ADVERSARIAL)
    values: dict[str, str] = {}
    for value in ids:
        label = names.label_value(value)
        assert label, value
        assert names.is_label_value(label), (value, label)
        if names.is_label_value(value) and value:
            assert label == value
        assert values.setdefault(label, value) == value
    assert names.label_value("x" * 64) != names.label_value("x" * 65)


def test_labels_and_selectors() -> None:
    labels = names.labels("Exp_1", "t1", 2)
    assert labels == {
        "app.kubernetes.io/managed-by": "kubesweep",
        "kubesweep.io/experiment": names.label_value("Exp_1"),
        "kubesweep.io/trial": "t1",
        "kubesweep.io/attempt": "2",
    }
    selector = names.selector("Exp_1", "t1", 2)
    assert dict(part.split("=", 1) for part in selector.split(",")) == labels
    assert names.selector() == "app.kubernetes.io/managed-by=kubesweep"
    assert names.selector("e") == "app.kubernetes.io/managed-by=kubesweep,kubesweep.io/experiment=e"
    with pytest.raises(ValueError, match="experiment id"):
        names.selector(trial_id="t1")
    with pytest.raises(ValueError, match="trial id"):
        names.selector("e", attempt=2)
    with pytest.raises(ValueError, match="attempt"):
        names.job_name("e", "t", 0)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("a-1", True),
        ("1a", False),
        ("a-", False),
        ("A", False),
        ("a_b", False),
        ("a" * 63, True),
        ("a" * 64, False),
        ("", False),
    ],
)
def test_dns1035(name: str, valid: bool) -> None:
    assert names.is_dns1035_label(name) is valid
