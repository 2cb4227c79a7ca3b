"""Vision tasks (classification, detection, instance segmentation) of the trainer.

Kept free of imports so `python -m trainer.vision.synthetic` stays cheap: import the
submodules (data, augment, synthetic, ...) directly.
"""
