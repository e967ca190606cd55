#!/usr/bin/env python3
"""The guide's ./scripts/health_check.py name: runs scripts/health_check (lakevault check)."""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
os.execv(os.path.join(here, "health_check"), [os.path.join(here, "health_check")] + sys.argv[1:])
