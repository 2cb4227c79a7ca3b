"""HTTP plumbing both API surfaces share: reading bodies, and domain errors as each API's envelope."""
