import sys

from shellsieve.cli import main

sys.exit(main())
