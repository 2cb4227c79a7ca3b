"""The AI Factory API surface (spec/ai-factory-api.md)."""
