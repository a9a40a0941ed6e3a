import sys

from uring_conform.cli import main

sys.exit(main())
