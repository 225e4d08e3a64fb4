-- Sliding sync (MSC4186) connections: per device and connection ID, versioned records of the
-- rooms the client has been sent. A position names a version; the newest two are kept.
CREATE TABLE sliding_connections (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    conn_id    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    written_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, conn_id, version)
) STRICT;

CREATE TABLE sliding_connection_rooms (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    conn_id    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    room_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    config     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, conn_id, version, room_id),
    FOREIGN KEY (user_id, device_id, conn_id, version)
        REFERENCES sliding_connections (user_id, device_id, conn_id, version) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- A connection belongs to a device; it goes when the device goes.
CREATE TRIGGER sliding_connections_follow_devices AFTER DELETE ON devices BEGIN
    DELETE FROM sliding_connections WHERE user_id = old.user_id AND device_id = old.device_id;
END;
