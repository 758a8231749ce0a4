from fashiongen.cli import main

raise SystemExit(main())
