-- Full-text search over room events, and content reports.
--
-- `event_search` is an FTS5 index keyed by the event's stream position (its rowid). It is
-- contentless: the text is tokenised into the index but not stored a second time (the event's
-- JSON already holds it), and rows can still be deleted (redaction, encryption switched on).
-- unicode61 folds case and strips diacritics, so "Müller" finds "muller" and "MÜLLER".
CREATE VIRTUAL TABLE event_search USING fts5(
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Reports about events (event_id set) or whole rooms (event_id NULL), for the operator.
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     TEXT NOT NULL,
    event_id    TEXT,
    reporter    TEXT NOT NULL,
    reason      TEXT,
    score       INTEGER,
    received_ms INTEGER NOT NULL
) STRICT;
