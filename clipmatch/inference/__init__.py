"""The inference core: loading, tokenising, embedding, image decoding and scoring.

Nothing here imports Django or reads settings: the app (`clipmatch`) and the
training program (`training`) pass what they need as arguments.
"""
