"""Train and create refuse a name no task knows (a typo must not start a job with defaults).

Both APIs share the rule and its words: every unknown name is named, with the closest known
name when one is close (difflib), e.g.
`Invalid 'num_epoch': unknown argument; did you mean num_epochs_to_finish?`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from contracts.errors import ArgumentError


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to `name`, or None when none is close."""
    found = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return found[0] if found else None


def problem(name: str, known: Iterable[str], what: str = "argument") -> str:
    """`unknown argument; did you mean X?` (or just `unknown argument` when nothing is close)."""
    guess = closest(name, known)
    return f"unknown {what}; did you mean {guess}?" if guess else f"unknown {what}"


def check_known(
    given: Iterable[str], known: Iterable[str], *, what: str = "argument", field_prefix: str = ""
) -> None:
    """Raises one ArgumentError (400) naming every name of `given` not in `known`, in order;
    `field_prefix` (`training_model.hyperparameters.`) makes the field a dotted path."""
    known = set(known)
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    problems = [problem(name, known, what) for name in unknown]
    error = ArgumentError(field_prefix + unknown[0], problems[0])
    # Spelled out (not ArgumentError's own words), so an empty name still reads `Invalid ''`.
    error.message = "; ".join(
        f"Invalid '{field_prefix}{name}': {text}" for name, text in zip(unknown, problems, strict=True)
    )
    error.args = (error.message,)
    raise error
