"""Sub-commands of the ``veil`` command line that live in their own modules."""
