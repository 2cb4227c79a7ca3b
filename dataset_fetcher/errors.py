"""The one exception a dataset problem surfaces as."""


class DatasetError(ValueError):
    """A page or record the trainer cannot use; the message names the offset and the cause.

    A ValueError so the trainer's failure report files it under E03 (bad input), not E00.
    """
