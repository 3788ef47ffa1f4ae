import sys

from ensplit.cli import main

sys.exit(main())
