"""The one exception type that turns into ``error: ...`` and exit status 2."""


class InputError(Exception):
    """Bad input (a file, a stream, an argument) the user can fix.

    The message names the file and the problem; the CLI prints it on one line.
    """

    def __init__(self, source, problem):
        self.source = str(source)
        self.problem = str(problem)
        super().__init__(f"{self.source}: {self.problem}")

    def one_line(self):
        """The message with control characters escaped so it fits on one line."""
        text = f"{self.source}: {self.problem}"
        return text.replace("\r", "\\r").replace("\n", "\\n")
