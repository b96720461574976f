"""Backups of the runtime's state store with point-in-time restore, and the restore drill.

- :mod:`.core`: ``knowngood backup``, ``backups list``, ``restore`` (one function each);
- :mod:`.sqlitebackup` and :mod:`.journal`: snapshots and the change journal of a SQLite store;
- :mod:`.replay`: rebuild a store at a time in scratch, verified;
- :mod:`.catalog`: what a target holds and which times it can restore (from names alone);
- :mod:`.targets`: a directory or a command;
- :mod:`.runner`: the schedule ``knowngood serve`` runs;
- :mod:`.drill`: ``knowngood drill restore``.

Nothing here imports the failover engine, litellm or dbos.
"""
