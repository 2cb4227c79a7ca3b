"""AI Factory training container: one entrypoint for text and vision tasks."""
