//! Ward's media files: where uploaded bytes live and how images become thumbnails.
//!
//! - [`blob`]: a content-addressed blob store — a small trait, [`BlobStore`], and its
//!   filesystem implementation, [`FsBlobStore`]. A blob is named by the SHA-256 of its bytes,
//!   so the same file uploaded twice is stored once. Bytes go to a temporary file that is
//!   fsynced and then renamed: a blob that has been committed survives a crash, and a crash
//!   never leaves a partial file under a final name.
//! - [`thumbnail`]: a pure function from image bytes and a requested size to thumbnail bytes
//!   (JPEG, PNG, GIF and WebP in; JPEG or PNG out), with limits against decompression bombs.
//!
//! This crate knows nothing of Matrix, HTTP or the database: the service layer keeps the
//! metadata (who uploaded what, under which media ID) and calls in here for the bytes.
//! **Invariant:** no network access, no async; everything here is blocking file or CPU work
//! that callers run off the async workers.

pub mod blob;
pub mod thumbnail;

pub use blob::{BlobId, BlobInfo, BlobReader, BlobStore, BlobWriter, FsBlobStore};
pub use thumbnail::{Method, Thumbnail, ThumbnailError, thumbnail};
