"""Callback delivery: POST a job's result to its callback_url, reliably and once per state."""
