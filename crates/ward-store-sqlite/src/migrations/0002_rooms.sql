-- Rooms, their events (signed PDUs), state and memberships.
--
-- Every event gets a stream position (`events.stream_pos`), the global order in which this
-- server accepted events; sync tokens and pagination are positions in that stream.
--
-- Room state is kept as state groups: a group is the state after some event, stored as a
-- delta (the entries that changed) on top of its `prev_group`, or as a full snapshot
-- (`prev_group IS NULL`) every so often, so "state at event X" costs a short walk and no full
-- copy per event. `room_state` is the current state, for the hot path.

-- The one stream position counter shared by everything a sync reports (events, account
-- data, receipts): a sync token is a single number.
CREATE TABLE stream (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    pos INTEGER NOT NULL
) STRICT;
INSERT INTO stream (id, pos) VALUES (1, 0);

CREATE TABLE rooms (
    room_id      TEXT PRIMARY KEY NOT NULL,
    room_version TEXT NOT NULL,
    creator      TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    state_group  INTEGER
) STRICT;

CREATE TABLE state_groups (
    id          INTEGER PRIMARY KEY,
    room_id     TEXT NOT NULL,
    prev_group  INTEGER,
    -- How many deltas lie between this group and its snapshot.
    chain_len   INTEGER NOT NULL
) STRICT;

CREATE TABLE state_group_entries (
    group_id  INTEGER NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
    stream_pos       INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    room_id          TEXT NOT NULL REFERENCES rooms (room_id),
    type             TEXT NOT NULL,
    state_key        TEXT,
    sender           TEXT NOT NULL,
    depth            INTEGER NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    -- State after this event.
    state_group      INTEGER NOT NULL,
    -- The signed PDU as canonical JSON (pruned in place when redacted).
    json             TEXT NOT NULL,
    redacted_by      TEXT,
    -- content.m.relates_to, for /relations.
    relates_to       TEXT,
    rel_type         TEXT
) STRICT;
CREATE INDEX events_by_room ON events (room_id, stream_pos);
CREATE INDEX events_by_relation ON events (relates_to, stream_pos) WHERE relates_to IS NOT NULL;
CREATE INDEX events_by_time ON events (room_id, origin_server_ts);
CREATE INDEX events_by_state_key ON events (room_id, type, state_key, stream_pos) WHERE state_key IS NOT NULL;

CREATE TABLE room_state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
) STRICT, WITHOUT ROWID;

CREATE TABLE memberships (
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    stream_pos INTEGER NOT NULL,
    -- Set by /forget; a new membership event replaces the row and so clears it.
    forgotten  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX memberships_by_user ON memberships (user_id, membership);

-- Client transaction IDs, for idempotent sends per device.
CREATE TABLE event_txns (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) STRICT, WITHOUT ROWID;

-- A transaction ID belongs to a device; it goes when the device goes.
CREATE TRIGGER event_txns_follow_devices AFTER DELETE ON devices BEGIN
    DELETE FROM event_txns WHERE user_id = old.user_id AND device_id = old.device_id;
END;

-- Per-user data: global (room_id = '') and per-room account data, including push rules and tags.
CREATE TABLE account_data (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
) STRICT, WITHOUT ROWID;
CREATE INDEX account_data_by_pos ON account_data (user_id, stream_pos);

CREATE TABLE filters (
    user_id   TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
) STRICT, WITHOUT ROWID;

-- Read receipts: the newest per user, type and thread. `event_pos` is the receipted event's
-- stream position, so "unread since the receipt" is a range query.
CREATE TABLE receipts (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_pos    INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    stream_pos   INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX receipts_by_room_pos ON receipts (room_id, stream_pos);

-- Room aliases (#name:server) and the published room directory.
CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY NOT NULL,
    room_id    TEXT NOT NULL REFERENCES rooms (room_id),
    creator    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

CREATE TABLE room_directory (
    room_id      TEXT PRIMARY KEY NOT NULL REFERENCES rooms (room_id),
    published_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id  TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    -- The pusher as clients send it (kind, data, display names, lang, …).
    json    TEXT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
) STRICT, WITHOUT ROWID;
