from llmasos.cli import main

raise SystemExit(main())
