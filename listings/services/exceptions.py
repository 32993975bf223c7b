"""Every error the listings services raise, in one place for callers to catch.

A refusal carries a `code` that names its cause, for the API's error body."""


class CodedError(Exception):
    """An error with a machine-readable cause beside its sentence."""

    code = "conflict"

    def __init__(self, message: str = "", *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class CalibrationError(Exception):
    """Not enough or not the right decisions to propose thresholds from."""


class TransitionNotAllowed(CodedError):
    """A status change that the state machine forbids from the current state."""

    code = "transition_not_allowed"


class StaleDecision(TransitionNotAllowed):
    """A decision made on a view of the listing that is no longer true."""

    code = "stale_view"


class ClaimLost(CodedError):
    """The moderator no longer holds the claim they act on."""

    code = "not_in_queue"


class DecisionNotAllowed(Exception):
    """The moderator may not make this decision (permission or conflict of interest)."""


class AppealNotAllowed(CodedError):
    """The listing cannot be appealed now, or not by this user."""

    code = "appeal_not_allowed"


class ListingNotEditable(Exception):
    """A change to a listing that its state or its owner does not allow."""


class ImageStorageError(RuntimeError):
    """An image file could not be read from storage: worth a retry."""
