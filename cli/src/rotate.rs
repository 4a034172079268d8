//! A log file that rotates by size, as cpppo's `--log` does (10 MB, 5 copies): when a
//! write would take `FILE` past the limit, `FILE.4` becomes `FILE.5`, ..., `FILE`
//! becomes `FILE.1`, and a fresh `FILE` is started.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An appending file writer that rotates itself by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Open (append to) `path`, rotating at `max_bytes` and keeping `keep` old copies.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file,
            written,
        })
    }

    fn copy_path(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            self.file = File::create(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.copy_path(n);
                if from.exists() {
                    std::fs::rename(&from, self.copy_path(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.copy_path(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_keeping_copies() {
        let dir = std::env::temp_dir().join(format!("cpppo-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut file = RotatingFile::open(&path, 10, 2).unwrap();
        for line in ["aaaaaaaa\n", "bbbbbbbb\n", "cccccccc\n", "dddddddd\n"] {
            file.write_all(line.as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "dddddddd\n");
        assert_eq!(read(dir.join("log.1")), "cccccccc\n");
        assert_eq!(read(dir.join("log.2")), "bbbbbbbb\n");
        assert!(!dir.join("log.3").exists());
        // Reopening appends and counts what is there.
        drop(file);
        let mut file = RotatingFile::open(&path, 10, 2).unwrap();
        file.write_all(b"e").unwrap();
        assert_eq!(read(path.clone()), "dddddddd\ne");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
