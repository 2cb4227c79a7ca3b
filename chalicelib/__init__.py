"""Everything the API Lambda runs. No torch, numpy or matplotlib here."""
