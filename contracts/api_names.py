"""The names of the two API surfaces, as a job record's (and job.json's) `api` field holds them.

Every module that asks "whose job is this?" compares against these, so a record written by
one surface is never mistaken for the other's by a typo in a second copy of the name.
"""

from __future__ import annotations

V15 = "v1.5"  # the v1.5.0 vision API (`/api/v1.5.0/...`)
AI_FACTORY = "ai_factory"  # the AI Factory API (create_training_job & co.)
CALLBACK_API = AI_FACTORY  # the surface whose jobs report their end to a callback_url (the outbox)
