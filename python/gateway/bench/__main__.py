"""``python -m gateway.bench``: run the load harness."""

from gateway.bench.harness import main

raise SystemExit(main())
