//! Reading history files: plain text, or gzip (`.gz`, as cpppo's `opener` writes and
//! reads them), cpppo's own included.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::record::{Line, RecordError};
use crate::time::{Abbreviations, Zone};

/// The file name ending of gzip-compressed history.
pub const GZIP_SUFFIX: &str = ".gz";

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("line {line}: {error}")]
    Io {
        /// The line being read (1-based).
        line: usize,
        /// What the system said.
        error: io::Error,
    },
    /// A line is not a comment or a record.
    #[error("line {line}: {error}")]
    Line {
        /// The line (1-based).
        line: usize,
        /// What was wrong with it.
        error: RecordError,
    },
}

/// The lines of a history file, numbered from 1, read as they are iterated.
#[derive(Debug)]
pub struct HistoryReader<R> {
    input: R,
    zone: Zone,
    abbreviations: Abbreviations,
    line: usize,
    text: String,
}

impl<R: BufRead> HistoryReader<R> {
    /// Read `input`; times without a zone term are in `zone`, abbreviations are looked up
    /// in `abbreviations`.
    pub fn new(input: R, zone: Zone, abbreviations: Abbreviations) -> Self {
        HistoryReader {
            input,
            zone,
            abbreviations,
            line: 0,
            text: String::new(),
        }
    }
}

impl HistoryReader<Box<dyn BufRead>> {
    /// Open the history file at `path` (gzip if its name ends in `.gz`).
    pub fn open(path: &Path, zone: Zone, abbreviations: Abbreviations) -> io::Result<Self> {
        let file = File::open(path)?;
        let gzip = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(GZIP_SUFFIX));
        let input: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        Ok(HistoryReader::new(input, zone, abbreviations))
    }
}

impl<R: BufRead> Iterator for HistoryReader<R> {
    type Item = Result<(usize, Line), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.text.clear();
        self.line += 1;
        match self.input.read_line(&mut self.text) {
            Ok(0) => None,
            Ok(_) => Some(
                Line::parse(&self.text, &self.zone, &self.abbreviations)
                    .map(|l| (self.line, l))
                    .map_err(|error| ReadError::Line {
                        line: self.line,
                        error,
                    }),
            ),
            // A gzip history whose writer was stopped before it finished the stream: what
            // was flushed is all there is.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(error) => Some(Err(ReadError::Io {
                line: self.line,
                error,
            })),
        }
    }
}
