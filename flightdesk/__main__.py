import sys

from flightdesk.cli import main

sys.exit(main())
