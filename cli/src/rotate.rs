//! A log file that rotates by size, as cpppo's `--log` does (10 MB, 5 copies): when a
//! write would take `FILE` past the limit, `FILE.4` becomes `FILE.5`, ..., `FILE`
//! becomes `FILE.1`, and a fresh `FILE` is started. With compression the copies are
//! gzipped: `FILE.1.gz` ... `FILE.5.gz`.

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
    compress: bool,
}

/// The ending of a compressed copy's name.
const GZIP_SUFFIX: &str = ".gz";

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
            compress: false,
        })
    }

    /// Gzip each copy as it is rotated out (`FILE.1.gz`).
    pub fn compressed(self) -> Self {
        RotatingFile {
            compress: true,
            ..self
        }
    }

    fn copy_path(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        if self.compress {
            name.push(GZIP_SUFFIX);
        }
        PathBuf::from(name)
    }

    /// Move the full file to copy 1: renamed, or gzipped into it.
    fn retire(&self) -> io::Result<()> {
        if !self.compress {
            return std::fs::rename(&self.path, self.copy_path(1));
        }
        let mut input = File::open(&self.path)?;
        let mut gz = flate2::write::GzEncoder::new(
            File::create(self.copy_path(1))?,
            flate2::Compression::default(),
        );
        io::copy(&mut input, &mut gz)?;
        gz.finish()?.sync_all()?;
        std::fs::remove_file(&self.path)
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
            self.retire()?;
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

    #[test]
    fn compressed_copies_are_gzip() {
        use std::io::Read;
        let dir = std::env::temp_dir().join(format!("cpppo-rotate-gz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut file = RotatingFile::open(&path, 10, 2).unwrap().compressed();
        for line in ["aaaaaaaa\n", "bbbbbbbb\n", "cccccccc\n", "dddddddd\n"] {
            file.write_all(line.as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let gunzip = |p: PathBuf| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(p).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "dddddddd\n");
        assert_eq!(gunzip(dir.join("log.1.gz")), "cccccccc\n");
        assert_eq!(gunzip(dir.join("log.2.gz")), "bbbbbbbb\n");
        assert!(!dir.join("log.3.gz").exists() && !dir.join("log.1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
