"""Every error the listings services raise, in one place for callers to catch."""


class CalibrationError(Exception):
    """Not enough or not the right decisions to propose thresholds from."""


class TransitionNotAllowed(Exception):
    """A status change that the state machine forbids from the current state."""


class StaleDecision(TransitionNotAllowed):
    """A decision made on a view of the listing that is no longer true."""


class ClaimLost(Exception):
    """The moderator no longer holds the claim they act on."""


class DecisionNotAllowed(Exception):
    """The moderator may not make this decision (permission or conflict of interest)."""


class AppealNotAllowed(Exception):
    """The listing cannot be appealed now, or not by this user."""


class ListingNotEditable(Exception):
    """A change to a listing that its state or its owner does not allow."""


class ImageStorageError(RuntimeError):
    """An image file could not be read from storage: worth a retry."""
