"""Use cases shared by both API surfaces; they talk to the ports only."""
