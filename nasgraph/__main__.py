from nasgraph.cli import main

raise SystemExit(main())
