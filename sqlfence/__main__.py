"""``python -m sqlfence``: the same as the ``sqlfence`` command."""

from sqlfence.cli import main

raise SystemExit(main())
