import sys

from tidal.cli.main import main

sys.exit(main())
