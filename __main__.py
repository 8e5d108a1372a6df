from qtc.cli import main

raise SystemExit(main())
