"""pytest plugin (``-p tests.psycopg2_only``): hide psycopg 3 so Django falls back to psycopg2.

Loaded with ``-p``, it runs before Django or our errors module import a driver.
"""

import os
import sys

# A None entry makes ``import psycopg`` (and psycopg_pool) raise ImportError.
sys.modules["psycopg"] = None

# Tells the driver test which driver this run expects.
os.environ["DJANGO_POOL_DRIVER"] = "psycopg2"
