-- Media metadata. The bytes live in the blob store under <data_dir>/media, named by their
-- SHA-256 (`sha256`); identical uploads share one file. A row without `sha256` is a media ID
-- reserved by /create that waits for its upload until `unused_expires_ms`.

CREATE TABLE media (
    media_id          TEXT PRIMARY KEY NOT NULL,
    uploader          TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    unused_expires_ms INTEGER,
    sha256            TEXT,
    size_bytes        INTEGER,
    content_type      TEXT,
    file_name         TEXT,
    uploaded_ms       INTEGER
) STRICT;
CREATE INDEX media_by_uploader ON media (uploader);
CREATE INDEX media_by_sha256 ON media (sha256);

-- Thumbnails made so far, keyed by the request they answer; their bytes are blobs too.
CREATE TABLE media_thumbnails (
    media_id     TEXT NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    method       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
) STRICT;
