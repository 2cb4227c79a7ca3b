"""Text tasks: `ml_tagger` (slot tagging) and `ml_topic` (topic classification)."""
