"""The v1.5 vision API: argument rules and views shared by its routes (stdlib only, Lambda-safe)."""
