from diffusion_regimes.cli import main

raise SystemExit(main())
