"""Loaded by every Python process the tests start (PYTHONPATH): block non-loopback network."""

import course_netguard

course_netguard.install()
