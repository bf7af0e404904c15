"""The one exception type that means "the user asked for something that cannot work", the one
way to tell the user of an adjustment that does work (`note`), and how messages count (`counted`).

The CLI prints an error's message as a single line and exits with status 2; anything else is a
bug.
"""

import sys


class NasboxError(ValueError):
    """Bad input: the message names the problem and, where possible, the fix.

    Line breaks that come in with user data (a column name, a file's text) are shown escaped,
    so the message stays one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


def error_reason(error: BaseException) -> str:
    """The first line of an exception's message, or its type where it has none, to quote in
    a one-line error."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__


def shown(value: object) -> str:
    """`value` for an error message, cut short (a returned or told array can be long)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def note(message: str) -> None:
    """An adjustment the user should know about; stderr, so it never mixes with CSV output."""
    print(f"nasbox: note: {message}", file=sys.stderr)


def counted(count: int, noun: str) -> str:
    """A count and its noun, singular for one: `1 architecture`, `1,234 architectures`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
