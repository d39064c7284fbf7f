"""The ``mlops`` sub-commands that build resources or record in Dagster (mounted by ``cli.py``)."""
