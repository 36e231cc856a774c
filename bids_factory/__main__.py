import sys

from bids_factory.cli import main

sys.exit(main())
