import sys

from bids_factory.cli.main import main

sys.exit(main())
