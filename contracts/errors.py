"""The error a contract rule raises for a bad value; the API turns it into a 400."""

from __future__ import annotations


class ArgumentError(ValueError):
    """A value broke a rule. `field` names it so the message says which one."""

    status_code = 400

    def __init__(self, field: str, problem: str):
        super().__init__(f"Invalid '{field}': {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.message = str(self)
