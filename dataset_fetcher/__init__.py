"""Pages through a dataset endpoint (`dataset_endpoint.type == "fetch"`).

Pure standard library on purpose: the API Lambda and the trainer both import it, and the
Lambda must not pull in torch or numpy.
"""

from dataset_fetcher.errors import DatasetError
from dataset_fetcher.fetch import fetch_all, iter_records
from dataset_fetcher.records import TASKS, validate_record

__all__ = ["DatasetError", "TASKS", "fetch_all", "iter_records", "validate_record"]
