from irisgate.cli import main

raise SystemExit(main())
