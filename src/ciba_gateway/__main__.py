"""``python -m ciba_gateway`` runs the CLI."""

from ciba_gateway.cli import main

raise SystemExit(main())
