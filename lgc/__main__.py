import sys

from lgc.cli.main import main

sys.exit(main())
