"""The one exception type the command line turns into a clean error message."""


class EmbaugError(Exception):
    """Bad input or configuration: the message names the file, row or config key at fault."""
