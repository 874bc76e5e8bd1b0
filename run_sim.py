#!/usr/bin/env python
"""Run the main job: ``python run_sim.py [SCENARIO.toml] [--backend embedded|carla ...]``.

A thin entry point to ``drive_il.cli`` (``drive-il run``): collect expert demonstrations,
train behaviour cloning, run DAgger, evaluate both and write the report under
``runs/<name>/``. ``python run_sim.py --help`` lists the options.
"""

import sys

from drive_il.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
