"""Errors a user can fix.

Every problem with the user's input (a model file, a data file, an option) is raised as
:class:`WeightkitError` with a one-line message that names the thing, the problem and the fix.
The command line turns it into exit status 2 and that single line on stderr.
"""

__all__ = ["WeightkitError"]


class WeightkitError(Exception):
    """A problem with the user's input, described in one line.

    Parameters
    ----------
    message : str
        What was expected, what was received and how to fix it. Newlines are folded
        into spaces so the message always prints as one line.
    """

    exit_code = 2

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))
