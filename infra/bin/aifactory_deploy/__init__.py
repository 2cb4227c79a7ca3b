"""`make deploy` / `make destroy`: one stage of AI Factory on AWS from a fresh account.

Run as `PYTHONPATH=infra/bin python -m aifactory_deploy deploy --stage dev` (the Makefile
does). The pieces are small modules named by what they do; only `config` and `images`
are pure (no AWS, no Docker), and tests exercise them with a fake `describe-stacks`.
"""
