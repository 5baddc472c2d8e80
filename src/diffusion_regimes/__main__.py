from diffusion_regimes.cli import main
from diffusion_regimes.lock import die_with_job, exit_on_sigterm

# A workflow worker dies with the job that started it (a killed workflow must not leave it writing
# outputs), cleaning up its temporary files and locks on the way.  Here, not in main(): tests call main().
exit_on_sigterm()
die_with_job()
raise SystemExit(main())
