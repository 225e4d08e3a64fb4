-- Meetings and video consultations (issue 8). Minimal metadata, purged after
-- meeting_retention_days: no client addresses, no end-to-end secrets (those stay in the link's
-- URL fragment), tokens and PINs only as hashes.

CREATE TABLE meetings (
    meeting_id    TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,            -- 'meeting' | 'consultation'
    title         TEXT,
    creator       TEXT NOT NULL,            -- Matrix user ID
    origin_room   TEXT,                     -- Matrix room ID it was started from
    members_enter INTEGER NOT NULL,         -- origin-room members enter directly as moderators
    created_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER NOT NULL,
    ended_ms      INTEGER,
    locked        INTEGER NOT NULL DEFAULT 0,
    pin_hash      TEXT                      -- argon2id PHC string
) STRICT;
CREATE INDEX meetings_by_creator ON meetings (creator) WHERE ended_ms IS NULL;

-- Guests in the lobby and after. The display name goes with the row at purge.
CREATE TABLE meeting_knocks (
    knock_id     TEXT PRIMARY KEY NOT NULL,
    meeting_id   TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    secret_hash  BLOB NOT NULL,             -- SHA-256 of the guest's polling secret
    display_name TEXT NOT NULL,
    identity     TEXT NOT NULL,             -- conferencing identity, guest-…
    link_hash    BLOB,                      -- the patient link it was made with
    status       TEXT NOT NULL,             -- waiting | admitted | rejected | removed | left | ended | expired
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX meeting_knocks_by_meeting ON meeting_knocks (meeting_id, status);
CREATE INDEX meeting_knocks_by_identity ON meeting_knocks (meeting_id, identity);

-- Single-use patient links of consultations; only the token's SHA-256 is kept.
CREATE TABLE meeting_patient_links (
    link_hash     BLOB PRIMARY KEY NOT NULL,
    meeting_id    TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    slot_start_ms INTEGER,
    slot_end_ms   INTEGER,
    knock_id      TEXT,
    spent         INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX meeting_patient_links_by_meeting ON meeting_patient_links (meeting_id);
