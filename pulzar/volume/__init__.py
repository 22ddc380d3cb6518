"""A volume: stores values, serves them, forwards writes to replicas, reports to the master."""
