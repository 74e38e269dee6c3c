"""python -m parity.native: build the comparison kernel (parity.native)."""

from parity.native import main

raise SystemExit(main())
