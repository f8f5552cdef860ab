import sys

from nnunetv2_scarnet.cli import main

sys.exit(main())
