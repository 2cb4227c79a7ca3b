"""The SageMaker hosting container for v1.5 vision checkpoints.

Split like the SageMaker inference toolkit: `predict` loads the model (through the
trainer's own `trainer.vision.checkpoint.load_model`) and runs it, `decode` turns a request
into an image and arguments, `encode` turns model output into the v1.5 infer body,
`batching` groups concurrent requests into one forward pass, `app` is the WSGI
application (`GET /ping`, `POST /invocations`) and `serve` runs it under waitress.
"""
