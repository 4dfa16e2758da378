//! The file a Raft snapshot is read from and received into: tokio's file
//! (its operations on the blocking threads) in production, a plain file
//! used inline where blocking work runs inline (a simulation, where a
//! blocking thread would run in real time and part two runs of a seed).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A snapshot's file.
#[derive(Debug)]
pub enum SnapshotFile {
    /// On tokio's blocking threads.
    Pooled(tokio::fs::File),
    /// Used inline, with the outcome of a seek started and not yet polled.
    Inline(std::fs::File, Option<io::Result<u64>>),
}

impl SnapshotFile {
    /// Open `path` to read.
    pub async fn open(path: &Path) -> io::Result<Self> {
        if crate::blocking::is_inline() {
            Ok(Self::Inline(std::fs::File::open(path)?, None))
        } else {
            Ok(Self::Pooled(tokio::fs::File::open(path).await?))
        }
    }

    /// Create `path`, which must not exist, to write and read.
    pub async fn create_new(path: &Path) -> io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        if crate::blocking::is_inline() {
            Ok(Self::Inline(options.open(path)?, None))
        } else {
            let options = tokio::fs::OpenOptions::from(options);
            Ok(Self::Pooled(options.open(path).await?))
        }
    }

    /// The plain file, once every operation in flight is done.
    pub async fn into_std(self) -> std::fs::File {
        match self {
            Self::Pooled(f) => f.into_std().await,
            Self::Inline(f, _) => f,
        }
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).poll_read(cx, buf),
            Self::Inline(f, _) => {
                let n = f.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).poll_write(cx, data),
            Self::Inline(f, _) => Poll::Ready(f.write(data)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).poll_flush(cx),
            Self::Inline(f, _) => Poll::Ready(f.flush()),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).poll_shutdown(cx),
            Self::Inline(f, _) => Poll::Ready(f.flush()),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).start_seek(position),
            Self::Inline(f, pending) => {
                *pending = Some(f.seek(position));
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.get_mut() {
            Self::Pooled(f) => Pin::new(f).poll_complete(cx),
            Self::Inline(f, pending) => Poll::Ready(match pending.take() {
                Some(done) => done,
                None => f.stream_position(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    async fn round_trip(dir: &Path, name: &str) -> Vec<u8> {
        let path = dir.join(name);
        let mut f = SnapshotFile::create_new(&path).await.unwrap();
        f.write_all(b"hello, snapshot").await.unwrap();
        f.flush().await.unwrap();
        assert_eq!(f.seek(SeekFrom::Start(7)).await.unwrap(), 7);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        assert!(SnapshotFile::create_new(&path).await.is_err(), "exists");
        let mut again = Vec::new();
        SnapshotFile::open(&path)
            .await
            .unwrap()
            .into_std()
            .await
            .read_to_end(&mut again)
            .unwrap();
        assert_eq!(again, b"hello, snapshot");
        rest
    }

    #[tokio::test]
    async fn both_kinds_write_seek_and_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(round_trip(dir.path(), "pooled").await, b"snapshot");
        // The inline kind, as a simulation uses it, by hand (the switch is
        // process-wide).
        let path = dir.path().join("inline");
        let mut f = SnapshotFile::Inline(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap(),
            None,
        );
        f.write_all(b"hello, snapshot").await.unwrap();
        assert_eq!(f.seek(SeekFrom::Start(7)).await.unwrap(), 7);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"snapshot");
        assert_eq!(f.seek(SeekFrom::Current(-3)).await.unwrap(), 12);
    }
}
