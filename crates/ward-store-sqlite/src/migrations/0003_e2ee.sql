-- End-to-end encryption: public key material, to-device messages and key backups.
-- Nothing here is secret to the server: keys are public parts, messages and backups are
-- ciphertext made by clients. JSON is kept as text exactly as the client signed it.

-- A device's identity keys; written once per device (changing them is refused).
CREATE TABLE device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) STRICT, WITHOUT ROWID;

-- Unclaimed one-time keys; a claim deletes the key it hands out.
CREATE TABLE one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
) STRICT, WITHOUT ROWID;

-- One fallback key per device and algorithm, handed out when one-time keys run out.
CREATE TABLE fallback_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    json      TEXT NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
) STRICT, WITHOUT ROWID;

-- kind: master | self_signing | user_signing
CREATE TABLE cross_signing_keys (
    user_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    json    TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
) STRICT, WITHOUT ROWID;

-- Signatures uploaded after the keys they sign (cross-signing a device or another user).
CREATE TABLE key_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id  TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id  TEXT NOT NULL,
    signature      TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
) STRICT, WITHOUT ROWID;

-- The latest stream position at which each user's device list changed (a device's keys
-- appeared, a device went, cross-signing keys or signatures changed). Only the latest counts:
-- a sync asks "did it change after my token?".
CREATE TABLE device_list_changes (
    user_id    TEXT PRIMARY KEY NOT NULL,
    stream_pos INTEGER NOT NULL
) STRICT;
CREATE INDEX device_list_changes_by_pos ON device_list_changes (stream_pos);

-- To-device messages waiting until the device acknowledges them with its next sync.
CREATE TABLE to_device (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    stream_pos INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_pos)
) STRICT, WITHOUT ROWID;

-- Senders' transaction IDs, so a retried send is not delivered twice.
CREATE TABLE to_device_txns (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) STRICT, WITHOUT ROWID;

-- A device's keys, queued messages and transaction IDs go with the device, and the owner's
-- device list changes (so the people they share rooms with stop encrypting for it).
CREATE TRIGGER e2ee_follows_devices AFTER DELETE ON devices BEGIN
    DELETE FROM device_keys WHERE user_id = old.user_id AND device_id = old.device_id;
    DELETE FROM one_time_keys WHERE user_id = old.user_id AND device_id = old.device_id;
    DELETE FROM fallback_keys WHERE user_id = old.user_id AND device_id = old.device_id;
    DELETE FROM to_device WHERE user_id = old.user_id AND device_id = old.device_id;
    DELETE FROM to_device_txns WHERE user_id = old.user_id AND device_id = old.device_id;
    DELETE FROM key_signatures WHERE target_user_id = old.user_id AND target_key_id = old.device_id;
    UPDATE stream SET pos = pos + 1 WHERE id = 1;
    INSERT OR REPLACE INTO device_list_changes (user_id, stream_pos)
        SELECT old.user_id, pos FROM stream WHERE id = 1;
END;

-- Server-side key backup versions. A deleted version keeps its row (numbers are never
-- reused) but loses its keys.
CREATE TABLE backup_versions (
    user_id   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag      INTEGER NOT NULL DEFAULT 0,
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE backup_keys (
    user_id             TEXT NOT NULL,
    version             INTEGER NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count     INTEGER NOT NULL,
    is_verified         INTEGER NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
) STRICT, WITHOUT ROWID;
