"""The one exception type that means "the user asked for something that cannot work".

The CLI prints its message as a single line and exits with status 2; anything else is a bug.
"""


class NasboxError(ValueError):
    """Bad input: the message names the problem and, where possible, the fix."""
