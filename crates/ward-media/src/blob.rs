//! The content-addressed blob store.
//!
//! Layout under the root directory (`<data_dir>/media`):
//!
//! ```text
//! ab/cd/abcd…(64 hex digits)   a blob, named by the SHA-256 of its bytes
//! tmp/<random>.part            a blob being written; never read
//! ```
//!
//! Writing: bytes go to a new file in `tmp/` while their hash is computed. [`BlobWriter::commit`]
//! fsyncs the file, renames it to its final name and fsyncs the directory, so a committed blob
//! survives `kill -9` and power loss; a crash before that leaves only a `tmp/` file, which is
//! swept at the next start once it is old. If the final name exists already, the bytes are
//! there already: the temporary file is dropped (deduplication).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Temporary files older than this are left-overs of a crash and are removed at start. Far
/// longer than any upload can take (uploads are bounded by the request timeout).
pub const TEMP_FILE_STALE_MS: u64 = 24 * 60 * 60 * 1000;

/// The SHA-256 of a blob's bytes, which is also its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.to_hex())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A committed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobId,
    pub size_bytes: u64,
}

/// Where blobs are kept. Every method blocks (file I/O): call it off the async workers.
pub trait BlobStore: Send + Sync {
    /// Starts a new blob. Nothing is visible under a final name until [`BlobWriter::commit`];
    /// dropping the writer discards what was written.
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>>;

    /// Opens a blob for reading; `None` if there is no blob with this ID.
    fn open(&self, id: &BlobId) -> io::Result<Option<Box<dyn BlobReader>>>;

    /// Stores `bytes` in one go.
    fn put(&self, bytes: &[u8]) -> io::Result<BlobInfo> {
        let mut writer = self.begin()?;
        writer.write(bytes)?;
        writer.commit()
    }
}

/// A blob being written.
pub trait BlobWriter: Send {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Bytes written so far.
    fn written_bytes(&self) -> u64;

    /// Makes the blob durable under its final name and says what it is.
    fn commit(self: Box<Self>) -> io::Result<BlobInfo>;
}

/// A stored blob, read from the start.
pub trait BlobReader: Read + Send {
    fn size_bytes(&self) -> u64;
}

/// Blobs as files under one directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store under `root` and removes stale temporary files.
    pub fn open(root: &Path) -> io::Result<Self> {
        let store = Self { root: root.to_owned() };
        fs::create_dir_all(store.tmp_dir())?;
        store.sweep_temp_files(Duration::from_millis(TEMP_FILE_STALE_MS));
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `<root>/ab/cd/abcd…`: two levels of 256 directories keep each directory small.
    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// Removes temporary files older than `age`: left-overs of a crash mid-upload. Younger ones
    /// may belong to an upload in progress (in this or another process) and are kept.
    fn sweep_temp_files(&self, age: Duration) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > age)
                .unwrap_or(false);
            if stale && let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale temporary file");
            }
        }
    }
}

/// Creates `dir` if it is missing and makes the new entry durable in its parent.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => dir.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsync on a directory makes the names in it (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// New files are readable by Ward's user only: they may be patient documents.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl BlobStore for FsBlobStore {
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        use rand::Rng;
        let mut rng = rand::rng();
        let name: String = (0..20).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        let path = self.tmp_dir().join(format!("{name}.part"));
        let file = create_private(&path)?;
        Ok(Box::new(FsBlobWriter {
            store: self.clone(),
            file: Some(file),
            temp: path,
            hasher: Sha256::new(),
            written_bytes: 0,
        }))
    }

    fn open(&self, id: &BlobId) -> io::Result<Option<Box<dyn BlobReader>>> {
        match File::open(self.path_of(id)) {
            Ok(file) => {
                let size_bytes = file.metadata()?.len();
                Ok(Some(Box::new(FsBlobReader { file, size_bytes })))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

struct FsBlobWriter {
    store: FsBlobStore,
    /// `None` once committed.
    file: Option<File>,
    temp: PathBuf,
    hasher: Sha256,
    written_bytes: u64,
}

impl BlobWriter for FsBlobWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self.file.as_mut().ok_or_else(|| io::Error::other("the blob is committed"))?;
        file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.written_bytes += bytes.len() as u64;
        Ok(())
    }

    fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    fn commit(mut self: Box<Self>) -> io::Result<BlobInfo> {
        let file = self.file.take().ok_or_else(|| io::Error::other("the blob is committed"))?;
        let id = BlobId(std::mem::take(&mut self.hasher).finalize().into());
        let info = BlobInfo { id, size_bytes: self.written_bytes };
        let target = self.store.path_of(&id);
        if target.is_file() {
            // The same bytes are stored already. Drop removes the temporary file.
            drop(file);
            return Ok(info);
        }
        file.sync_all()?;
        drop(file);
        let leaf = target.parent().ok_or_else(|| io::Error::other("blob path without a parent"))?;
        if let Some(upper) = leaf.parent() {
            ensure_dir(upper)?;
        }
        ensure_dir(leaf)?;
        fs::rename(&self.temp, &target)?;
        sync_dir(leaf)?;
        // Renamed: nothing for Drop to remove.
        self.temp = PathBuf::new();
        Ok(info)
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty()
            && let Err(e) = fs::remove_file(&self.temp)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.temp.display(), error = %e, "cannot remove a temporary file");
        }
    }
}

struct FsBlobReader {
    file: File,
    size_bytes: u64,
}

impl Read for FsBlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl BlobReader for FsBlobReader {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(store: &FsBlobStore, id: &BlobId) -> Vec<u8> {
        let mut reader = store.open(id).unwrap().expect("blob exists");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, reader.size_bytes());
        out
    }

    fn temp_files(store: &FsBlobStore) -> usize {
        fs::read_dir(store.tmp_dir()).unwrap().count()
    }

    #[test]
    fn blobs_are_named_by_their_hash_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.begin().unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        assert_eq!(w.written_bytes(), 11);
        let info = w.commit().unwrap();
        assert_eq!(info, BlobInfo { id: BlobId::of(b"hello world"), size_bytes: 11 });
        assert_eq!(
            info.id.to_hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "the SHA-256 of the bytes"
        );
        let path = store.path_of(&info.id);
        assert!(path.ends_with("b9/4d/b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        assert_eq!(read_all(&store, &info.id), b"hello world");

        // The same bytes again: same blob, one file, no temporary left behind.
        assert_eq!(store.put(b"hello world").unwrap(), info);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn an_abandoned_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.begin().unwrap();
        w.write(b"half an upload").unwrap();
        assert_eq!(temp_files(&store), 1);
        drop(w);
        assert_eq!(temp_files(&store), 0);
        assert!(store.open(&BlobId::of(b"half an upload")).unwrap().is_none());
    }

    #[test]
    fn stale_temporary_files_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        fs::write(store.tmp_dir().join("crashed.part"), b"x").unwrap();
        // Young files may belong to a running upload: kept.
        let store = FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(temp_files(&store), 1);
        store.sweep_temp_files(Duration::ZERO);
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn hex_round_trip() {
        let id = BlobId::of(b"x");
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(BlobId::from_hex("zz"), None);
        assert_eq!(BlobId::from_hex(&"G".repeat(64)), None);
    }

    #[cfg(unix)]
    #[test]
    fn blobs_are_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let info = store.put(b"befund").unwrap();
        let mode = fs::metadata(store.path_of(&info.id)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
