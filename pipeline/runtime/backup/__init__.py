"""Backups of the runtime's state store, with point-in-time restore.

- :mod:`.core`: ``knowngood backup`` and ``backups list``; :mod:`.restore`: ``restore``;
- :mod:`.sqlitebackup` and :mod:`.journal`: snapshots and the change journal of a SQLite store;
- :mod:`.replay`: rebuild a SQLite store at a time in scratch, verified;
- :mod:`.catalog`: what a target holds and which times it can restore (from names alone);
- :mod:`.postgres` and :mod:`.pgrestore`: base backups, WAL archive and recovery of PostgreSQL;
- :mod:`.targets`: a directory or a command;
- :mod:`.runner`: the schedule ``knowngood serve`` runs.

``knowngood drill restore`` is :mod:`pipeline.deploy.restore_drill`, beside the other drills.
Nothing here imports the failover engine, litellm or dbos.
"""
