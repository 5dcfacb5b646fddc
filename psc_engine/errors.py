"""One exception type for user errors, so the command line can print one line and exit 2."""


class PSCError(Exception):
    """A problem with the user's input (a file, a setting): the message says what and where.

    The command line prints `psc: error: <message>` and exits with status 2, no traceback.
    """

    def __init__(self, message, path=None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)
