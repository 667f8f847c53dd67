"""``python -m nb2prod.serving``: the serving model's builder (see :mod:`.process`)."""

from .process import main

main()
