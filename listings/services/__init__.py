"""Writes for listings, one module per domain; import from the module itself.

exceptions   every error the services raise
queueing     the one door to the task queue (tests replace `queue_task`)
priority     how urgent a queue item is: mismatch_probability, review_priority
transitions  the status machine: TRANSITIONS, listing_transition
assessment   scoring content with a model (the one scorer: listings and prechecks)
scoring      requesting, running and routing a listing's scoring task
reconcile    the reconciler that re-queues lost or failed scoring, and its schedule
review       the review queue: claims, decisions, appeals
rescoring    rescoring with a newly active model, and shadow scoring a candidate
calibration  thresholds proposed from moderators' decisions
lifecycle    a seller's listing: create, update, soft delete, precheck
accounts     sellers and API tokens
"""
