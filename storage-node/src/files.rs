//! The node's files (shard files), behind the [`Files`] seam: the
//! operating system's file system in production ([`OsFiles`]),
//! [`MemoryFiles`] in tests and simulation.
//!
//! [`MemoryFiles`] keeps what a power loss would keep apart from what reads
//! see, with POSIX's rules: a file's bytes are durable once the file is
//! synced, a name (a new file, a rename, a removal) once its directory is.
//! [`MemoryFiles::power_loss`] drops the rest, leaving a file whose bytes
//! were not all synced torn at some length.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The seam between the node and its file system.
pub trait Files: Send + Sync + 'static {
    /// Create `path` (or replace it) holding `parts` one after the other;
    /// its bytes are durable on return when `sync` (its name is not: see
    /// [`Files::sync_dir`]).
    fn write_new(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()>;
    /// Rename `from` to `to`, replacing `to`, atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make the names in `dir` durable (creations, renames, removals).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Create `dir` and its parents (durable at once).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// `path` open for reading (`NotFound` when absent).
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Remove `path` (`NotFound` when absent).
    fn remove(&self, path: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFiles;

impl Files for OsFiles {
    fn write_new(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        for p in parts {
            f.write_all(p)?;
        }
        if sync {
            f.sync_all()?;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// An open file's bytes, shared with the file.
struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A file's bytes: what reads see and what was last synced.
#[derive(Debug, Default)]
struct Inode {
    data: Arc<Vec<u8>>,
    synced: Arc<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    /// Incremented by each power loss: handles of an earlier one fail.
    epoch: u64,
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    /// Names as reads see them.
    names: BTreeMap<PathBuf, u64>,
    /// Names as a power loss leaves them.
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
}

impl State {
    /// Drop an inode no name (current or durable) refers to any more.
    fn forget(&mut self, id: u64) {
        if !self.names.values().any(|v| *v == id) && !self.durable_names.values().any(|v| *v == id)
        {
            self.inodes.remove(&id);
        }
    }
}

/// Files in memory, with the durability of a disk. Clones share the
/// files. After a power loss the handles from before it fail every call;
/// [`MemoryFiles::reopen`] gives a working one, which finds what survived.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    state: Arc<Mutex<State>>,
    epoch: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the files as they are now.
    pub fn reopen(&self) -> Self {
        Self {
            state: self.state.clone(),
            epoch: self.state.lock().expect("files lock").epoch,
        }
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let s = self.state.lock().expect("files lock");
        if s.epoch != self.epoch {
            return Err(io::Error::other("the disk lost power"));
        }
        Ok(s)
    }

    /// Lose power: names not made durable revert, and a file whose bytes
    /// were not all synced keeps the synced bytes or, torn, the first
    /// `torn(len)` (at most `len`) bytes of what was written.
    pub fn power_loss(&self, mut torn: impl FnMut(usize) -> Option<usize>) {
        let mut s = self.state.lock().expect("files lock");
        s.epoch += 1;
        s.names = s.durable_names.clone();
        let live: BTreeSet<u64> = s.names.values().copied().collect();
        s.inodes.retain(|id, _| live.contains(id));
        for inode in s.inodes.values_mut() {
            if inode.data != inode.synced {
                let keep = match torn(inode.data.len()) {
                    Some(n) => Arc::new(inode.data[..n.min(inode.data.len())].to_vec()),
                    None => inode.synced.clone(),
                };
                inode.data = keep.clone();
                inode.synced = keep;
            }
        }
    }

    /// Change stored bytes behind the node's back (a test of corruption).
    pub fn tamper(&self, path: &Path, change: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut s = self.state.lock().expect("files lock");
        let id = *s.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = s.inodes.get_mut(&id).expect("named inodes exist");
        let mut data = inode.data.as_ref().clone();
        change(&mut data);
        inode.data = Arc::new(data);
        inode.synced = inode.data.clone();
        Ok(())
    }

    /// Every file's path.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state
            .lock()
            .expect("files lock")
            .names
            .keys()
            .cloned()
            .collect()
    }
}

impl Files for MemoryFiles {
    fn write_new(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
        let mut s = self.lock()?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if !s.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let data = Arc::new(parts.concat());
        let synced = if sync { data.clone() } else { Arc::default() };
        s.next_inode += 1;
        let id = s.next_inode;
        s.inodes.insert(id, Inode { data, synced });
        if let Some(old) = s.names.insert(path.to_path_buf(), id) {
            s.forget(old);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock()?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        if let Some(old) = s.names.insert(to.to_path_buf(), id) {
            s.forget(old);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &Path| p.parent() == Some(dir);
        let State {
            names,
            durable_names,
            ..
        } = &mut *s;
        let mut dropped = Vec::new();
        durable_names.retain(|p, id| {
            if in_dir(p) {
                dropped.push(*id);
            }
            !in_dir(p)
        });
        for (p, id) in names.iter().filter(|(p, _)| in_dir(p)) {
            durable_names.insert(p.clone(), *id);
        }
        for id in dropped {
            s.forget(id);
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock()?;
        for a in dir.ancestors() {
            s.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let s = self.lock()?;
        let id = s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(io::Cursor::new(Bytes(s.inodes[id].data.clone()))))
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock()
            .is_ok_and(|s| s.names.contains_key(path) || s.dirs.contains(path))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock()?;
        let id = s.names.remove(path).ok_or_else(|| not_found(path))?;
        s.forget(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fs: &MemoryFiles, path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        fs.open(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn only_synced_bytes_under_synced_names_survive_a_power_loss() {
        let fs = MemoryFiles::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        // Synced and named durably: survives.
        fs.write_new(&a, &[b"aa", b"aa"], true).unwrap();
        fs.sync_dir(dir).unwrap();
        // Name synced, bytes never synced: torn (here to 1 byte).
        fs.write_new(&c, &[b"cccc"], false).unwrap();
        fs.sync_dir(dir).unwrap();
        // Synced bytes, name never synced: gone.
        fs.write_new(&b, &[b"bbbb"], true).unwrap();
        fs.remove(&a).unwrap();
        assert!(!fs.exists(&a));
        fs.power_loss(|len| Some(len / 4));
        assert!(read(&fs, &a).is_err(), "a handle from before fails");
        let fs = fs.reopen();
        assert_eq!(
            read(&fs, &a).unwrap(),
            b"aaaa",
            "the removal was not synced"
        );
        assert!(!fs.exists(&b));
        assert_eq!(read(&fs, &c).unwrap(), b"c");
    }

    #[test]
    fn a_rename_is_durable_once_its_directory_is_synced() {
        let fs = MemoryFiles::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let (tmp, file) = (dir.join(".tmp"), dir.join("f"));
        fs.write_new(&tmp, &[b"new"], true).unwrap();
        fs.rename(&tmp, &file).unwrap();
        fs.power_loss(|_| None);
        let fs = fs.reopen();
        assert!(!fs.exists(&file) && !fs.exists(&tmp));
        fs.write_new(&tmp, &[b"new"], true).unwrap();
        fs.rename(&tmp, &file).unwrap();
        fs.sync_dir(dir).unwrap();
        fs.power_loss(|_| None);
        let fs = fs.reopen();
        assert_eq!(read(&fs, &file).unwrap(), b"new");
        assert!(fs.write_new(Path::new("/nodir/x"), &[b""], true).is_err());
    }
}
