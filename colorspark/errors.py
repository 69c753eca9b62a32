"""The error a job ends with when it fails as a whole; every module raises it with a message for the user."""


class JobError(RuntimeError):
    """A failure of a whole job, with a message for the user (the command exits with `exit_code`)."""

    exit_code = 1
