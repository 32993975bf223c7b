"""What the model layer announces, after commit, for the product to act on.

clipmatch never imports listings: when the version in force or the shadow candidate
changes, it says so, and listings (which owns the catalog) queues the rescore.
"""

from django.dispatch import Signal

# Sent after the commit that activated a version; argument: version_id.
model_version_activated = Signal()
# Sent after the commit that made a version the shadow candidate; argument: version_id.
model_version_shadowed = Signal()
