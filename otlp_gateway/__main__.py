from otlp_gateway.cli import main

raise SystemExit(main())
