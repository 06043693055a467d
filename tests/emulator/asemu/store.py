"""The SQLite databases: config.db (profiles of settings) and userprop.db.

Both files share one shape, as on the real server: a ``profile`` table and a
``config`` table of (profile_id, name, value) rows.  In config.db the profiles
are configuration profiles (``Default``, ``_INTERNAL``); in userprop.db every
user and group is a profile and its rows are its properties.

Several processes, and on a cluster several roots, may use one file at the same
time: a busy file is waited for (``timeout``), a profile that another process
created meanwhile is found rather than created twice, and ``begin`` holds the
write lock over a read and the writes that depend on it.
"""

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS profile (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(255) NOT NULL UNIQUE,
    modified INTEGER
);
CREATE TABLE IF NOT EXISTS config (
    profile_id INTEGER NOT NULL REFERENCES profile(id),
    name VARCHAR(255) NOT NULL,
    value TEXT,
    UNIQUE (profile_id, name)
);
"""


class Store(object):
    """A config.db-shaped SQLite file."""

    def __init__(self, path):
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30)
        self.conn.executescript(SCHEMA)

    def begin(self):
        """Take the write lock now, so that what is read next stays true until the commit."""
        self.conn.execute("BEGIN IMMEDIATE")

    def close(self):
        self.conn.commit()
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        self.conn.close()

    # profiles ---------------------------------------------------------------
    def profile_id(self, name, create=False):
        row = self.conn.execute("SELECT id FROM profile WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            return None
        # another process may have created it since the SELECT: insert unless it exists, then read it
        # again inside the write transaction that the INSERT began
        self.conn.execute(
            "INSERT OR IGNORE INTO profile (name, modified) VALUES (?, strftime('%s','now'))", (name,)
        )
        return self.conn.execute("SELECT id FROM profile WHERE name = ?", (name,)).fetchone()[0]

    def profiles(self):
        return [row[0] for row in self.conn.execute("SELECT name FROM profile ORDER BY name")]

    def find_profile(self, name):
        """The stored spelling of ``name``, matched without regard to case."""
        row = self.conn.execute(
            "SELECT name FROM profile WHERE lower(name) = lower(?) ORDER BY name = ? DESC", (name, name)
        ).fetchone()
        return row[0] if row else None

    def delete_profile(self, name):
        pid = self.profile_id(name)
        if pid is None:
            return False
        self.conn.execute("DELETE FROM config WHERE profile_id = ?", (pid,))
        self.conn.execute("DELETE FROM profile WHERE id = ?", (pid,))
        return True

    # values -----------------------------------------------------------------
    def items(self, profile):
        pid = self.profile_id(profile)
        if pid is None:
            return {}
        rows = self.conn.execute("SELECT name, value FROM config WHERE profile_id = ?", (pid,))
        return dict(rows)

    def get(self, profile, name, default=None):
        return self.items(profile).get(name, default)

    def put(self, profile, name, value):
        pid = self.profile_id(profile, create=True)
        self.conn.execute(
            "INSERT OR REPLACE INTO config (profile_id, name, value) VALUES (?, ?, ?)", (pid, name, value)
        )
        self.conn.execute("UPDATE profile SET modified = strftime('%s','now') WHERE id = ?", (pid,))

    def delete(self, profile, name):
        pid = self.profile_id(profile)
        if pid is None:
            return False
        cur = self.conn.execute("DELETE FROM config WHERE profile_id = ? AND name = ?", (pid, name))
        return cur.rowcount > 0

    def replace(self, profile, values):
        pid = self.profile_id(profile, create=True)
        self.conn.execute("DELETE FROM config WHERE profile_id = ?", (pid,))
        for name, value in values.items():
            self.conn.execute(
                "INSERT INTO config (profile_id, name, value) VALUES (?, ?, ?)", (pid, name, value)
            )
