//! Flow-log inputs: files (plain or gzip, told apart by their first bytes), directories
//! (walked, in name order) and stdin (`-`), cut into units that worker threads read in
//! parallel. A plain file larger than [`CHUNK_BYTES`] is split into chunks at line
//! boundaries; a gzip file is one unit (a gzip stream cannot be entered in the middle).

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use std::sync::Arc;

use super::{
    format::{Field, Layout},
    record::{self, Line},
    s3,
};

/// Size of the chunks plain files are split into.
pub const CHUNK_BYTES: u64 = 64 << 20;
/// Bad lines whose text each unit keeps (the count is always exact).
pub const BAD_EXAMPLES: usize = 10;
const READ_BYTES: usize = 1 << 20;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One input: a file, or stdin.
#[derive(Debug)]
pub struct Input {
    /// The file (`None`: stdin).
    pub path: Option<PathBuf>,
    /// As it prints: the path, or `-`.
    pub name: String,
    /// Bytes on disk (0 for stdin).
    pub size: u64,
    /// Whether it is gzip.
    pub gzip: bool,
    /// A plain file's layout and whether its first line is a header; gzip files, stdin and
    /// S3 objects decide theirs when read.
    pub layout: Option<Result<(Layout, bool), String>>,
    /// An S3 object: its bucket and key (`path` is then `None`).
    pub s3: Option<(Arc<s3::Bucket>, object_store::path::Path)>,
}

/// A piece of an input a worker reads.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    /// Index of the input.
    pub input: usize,
    /// Index of the chunk within it.
    pub chunk: usize,
    /// Offset of the chunk's first byte (plain files).
    pub start: u64,
    /// Offset where the next chunk's lines start (`None`: to the end).
    pub end: Option<u64>,
}

/// What a worker found reading one unit (the records themselves go to its analyzer).
#[derive(Debug, Default)]
pub struct UnitResult {
    /// Lines that start in the unit (the header included).
    pub lines: u64,
    /// Records with traffic.
    pub records: u64,
    /// NODATA records.
    pub nodata: u64,
    /// SKIPDATA records.
    pub skipdata: u64,
    /// Lines that are no record.
    pub bad: u64,
    /// The first bad lines: line number within the unit (1-based) and the problem.
    pub bad_examples: Vec<(u64, String)>,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// A problem with the whole input (unreadable, truncated gzip, no layout).
    pub error: Option<String>,
    /// Something the reader of the report should know about the input (a format without
    /// `bytes`).
    pub warning: Option<String>,
}

/// Lists the inputs of `args` (files, directories, `-`).
///
/// # Errors
/// A path that does not exist or cannot be read, naming it.
pub fn collect(
    args: &[PathBuf],
    format: Option<&Layout>,
    dates: &s3::Dates,
) -> Result<Vec<Input>, String> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            inputs.push(Input {
                path: None,
                name: "-".into(),
                size: 0,
                gzip: false,
                layout: None,
                s3: None,
            });
            continue;
        }
        if let Some(url) = arg.to_str().filter(|a| s3::is_s3(a)) {
            let (bucket, objects) = s3::list(url, dates)?;
            for (key, size) in objects {
                inputs.push(Input {
                    path: None,
                    name: format!("{}/{key}", bucket.url),
                    size,
                    gzip: false,
                    layout: None,
                    s3: Some((bucket.clone(), key)),
                });
            }
            continue;
        }
        let meta = std::fs::metadata(arg).map_err(|e| format!("{}: {e}", arg.display()))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(arg).sort_by_file_name() {
                let entry = entry.map_err(|e| format!("{}: {e}", arg.display()))?;
                if entry.file_type().is_file() {
                    files.push(entry.into_path());
                }
            }
        } else {
            files.push(arg.clone());
        }
        for path in files.into_iter().filter(|p| dates.admit(&p.to_string_lossy())) {
            inputs.push(open_input(&path, format)?);
        }
    }
    Ok(inputs)
}

fn open_input(path: &Path, format: Option<&Layout>) -> Result<Input, String> {
    let name = path.display().to_string();
    let failed = |e: std::io::Error| format!("{name}: {e}");
    let file = File::open(path).map_err(failed)?;
    let size = file.metadata().map_err(failed)?.len();
    let mut reader = BufReader::new(file);
    let gzip = reader.fill_buf().map_err(failed)?.starts_with(&GZIP_MAGIC);
    let layout = if gzip {
        None
    } else {
        let mut first = Vec::new();
        reader.take(READ_BYTES as u64).read_until(b'\n', &mut first).map_err(failed)?;
        Some(decide_layout(&first, format))
    };
    Ok(Input { path: Some(path.to_owned()), name, size, gzip, layout, s3: None })
}

/// The units of `inputs`, in order: plain files cut into chunks of `chunk_bytes` (at least
/// 1).
pub fn units(inputs: &[Input], chunk_bytes: u64) -> Vec<Unit> {
    let chunk_bytes = chunk_bytes.max(1);
    let mut units = Vec::new();
    for (input, i) in inputs.iter().enumerate() {
        if i.gzip || i.path.is_none() || i.size <= chunk_bytes {
            units.push(Unit { input, chunk: 0, start: 0, end: None });
            continue;
        }
        let chunks = i.size.div_ceil(chunk_bytes);
        for chunk in 0..chunks {
            let start = chunk * chunk_bytes;
            let end = (chunk + 1 < chunks).then(|| start + chunk_bytes);
            units.push(Unit { input, chunk: chunk as usize, start, end });
        }
    }
    units
}

/// The layout for a file whose first line is `first`, and whether that line is a header.
fn decide_layout(first: &[u8], format: Option<&Layout>) -> Result<(Layout, bool), String> {
    let text = String::from_utf8_lossy(first);
    let text = text.trim_end();
    match Layout::from_header(text) {
        Ok(Some(layout)) => return Ok((layout, true)),
        Ok(None) => {}
        Err(e) => return Err(format!("line 1 (header): {e}")),
    }
    if let Some(f) = format {
        return Ok((f.clone(), false));
    }
    let columns = text.split_whitespace().count();
    Layout::all_fields(columns).map(|l| (l, false)).ok_or_else(|| {
        format!(
            "no header line, and {columns} fields per record is none of AWS's default formats \
             (14, 29, 39, 40): give --format with the log's format"
        )
    })
}

/// Reads `unit` of `input`, handing each record to `on_record`; `progress` learns the
/// input bytes consumed (compressed bytes for gzip).
pub fn read_unit(
    input: &Input,
    unit: Unit,
    format: Option<&Layout>,
    progress: &(dyn Fn(u64) + Sync),
    on_record: &mut dyn FnMut(&record::Record<'_>),
) -> UnitResult {
    let mut result = UnitResult::default();
    let opened: Result<Box<dyn Read>, std::io::Error> = match (&input.path, &input.s3) {
        (None, Some((bucket, key))) => match bucket.fetch(key) {
            Ok(object) => Ok(Box::new(Counting { inner: object, progress })),
            Err(e) => {
                result.error = Some(e);
                return result;
            }
        },
        (None, None) => Ok(Box::new(Counting { inner: std::io::stdin().lock(), progress })),
        (Some(path), _) => File::open(path).and_then(|mut f| {
            // A chunk after the first starts one byte early: the line that byte ends belongs
            // to the previous chunk, and is skipped.
            if unit.start > 0 {
                f.seek(SeekFrom::Start(unit.start - 1))?;
            }
            Ok(Box::new(Counting { inner: f, progress }) as Box<dyn Read>)
        }),
    };
    let reader = match opened {
        Ok(r) => r,
        Err(e) => {
            result.error = Some(format!("{}: {e}", input.name));
            return result;
        }
    };
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let gzip = match reader.fill_buf() {
        Ok(b) => b.starts_with(&GZIP_MAGIC),
        Err(e) => {
            result.error = Some(format!("{}: {e}", input.name));
            return result;
        }
    };
    let mut scan = Scan {
        layout: input.layout.clone(),
        format,
        skip_partial: unit.start > 0,
        limit: unit.end.map(|e| e - unit.start + u64::from(unit.start > 0)),
        offset: 0,
        result: &mut result,
        on_record,
    };
    let outcome = if gzip {
        scan.run(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        scan.run(reader)
    };
    if let Err(e) = outcome {
        result.error = Some(match e {
            ScanError::Io(e) if gzip => format!(
                "{}: truncated or corrupt gzip after {} uncompressed bytes ({e}); the records \
                 before it are counted",
                input.name, result.bytes
            ),
            ScanError::Io(e) => format!("{}: {e}", input.name),
            ScanError::Layout(e) => format!("{}: {e}", input.name),
        });
    }
    result
}

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// With a line feed.
    Newline,
    /// At the end of the input.
    Eof,
    /// Not within the buffer: only its first part is given.
    Overlong,
}

enum ScanError {
    Io(std::io::Error),
    Layout(String),
}

struct Scan<'a, 'b> {
    layout: Option<Result<(Layout, bool), String>>,
    format: Option<&'a Layout>,
    skip_partial: bool,
    /// Offset (from where reading began) at or after which no new line is read.
    limit: Option<u64>,
    offset: u64,
    result: &'b mut UnitResult,
    on_record: &'b mut dyn FnMut(&record::Record<'_>),
}

impl Scan<'_, '_> {
    fn run(&mut self, mut reader: impl Read) -> Result<(), ScanError> {
        let mut buf = vec![0u8; READ_BYTES];
        let mut filled = 0;
        // Inside a line longer than the buffer, and whether its bytes are this unit's.
        let mut skipping: Option<bool> = None;
        loop {
            if filled == buf.len() {
                // A line longer than the buffer: no record is. It is a bad line, skipped to
                // its end, so that memory stays bounded whatever the input.
                let line_start = self.offset;
                self.offset += filled as u64;
                match self.line(line_start, &buf[..filled], LineEnd::Overlong)? {
                    Some(counted) => skipping = Some(counted),
                    None => return Ok(()),
                }
                filled = 0;
            }
            let n = match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ScanError::Io(e)),
            };
            filled += n;
            let mut at = 0;
            if let Some(counted) = skipping {
                let end = memchr::memchr(b'\n', &buf[..filled]).map_or(filled, |nl| nl + 1);
                self.offset += end as u64;
                self.result.bytes += if counted { end as u64 } else { 0 };
                if end < filled || buf[end - 1] == b'\n' {
                    skipping = None;
                }
                at = end;
            }
            while let Some(nl) = memchr::memchr(b'\n', &buf[at..filled]) {
                let line_start = self.offset;
                let line = &buf[at..at + nl];
                self.offset += nl as u64 + 1;
                at += nl + 1;
                if self.line(line_start, line, LineEnd::Newline)?.is_none() {
                    return Ok(());
                }
            }
            buf.copy_within(at..filled, 0);
            filled -= at;
        }
        if filled > 0 && skipping.is_none() {
            let line_start = self.offset;
            self.line(line_start, &buf[..filled], LineEnd::Eof)?;
        }
        Ok(())
    }

    /// One line; `None` once the unit's lines are done, else whether the line was this
    /// unit's (a chunk's first, partial line is the previous chunk's).
    fn line(&mut self, start: u64, line: &[u8], end: LineEnd) -> Result<Option<bool>, ScanError> {
        if self.skip_partial {
            self.skip_partial = false;
            return Ok(Some(false));
        }
        if self.limit.is_some_and(|l| start >= l) {
            return Ok(None);
        }
        // The line end counts: these are the bytes of the input.
        self.result.bytes += line.len() as u64 + u64::from(end == LineEnd::Newline);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.result.lines += 1;
        let number = self.result.lines;
        if end == LineEnd::Overlong {
            self.result.bad += 1;
            if self.result.bad_examples.len() < BAD_EXAMPLES {
                let problem =
                    format!("longer than {} KiB: not a flow-log record", READ_BYTES >> 10);
                self.result.bad_examples.push((number, problem));
            }
            return Ok(Some(true));
        }
        if self.layout.is_none() {
            // Gzip and stdin: the first line decides.
            self.layout = Some(decide_layout(line, self.format));
        }
        let (layout, header) = match &self.layout {
            Some(Ok(l)) => (&l.0, l.1),
            Some(Err(e)) => return Err(ScanError::Layout(e.clone())),
            None => unreachable!("decided above"),
        };
        if self.result.warning.is_none() && layout.column(Field::Bytes).is_none() {
            self.result.warning = Some(
                "the format has no bytes field: its records count flows, with 0 bytes and no cost"
                    .into(),
            );
        }
        // The header is the first line of the first chunk, which starts reading at 0.
        if number == 1 && header && start == 0 {
            return Ok(Some(true));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(true));
        }
        match record::parse(line, layout) {
            Ok(Line::Record(r)) => {
                self.result.records += 1;
                (self.on_record)(&r);
            }
            Ok(Line::NoData) => self.result.nodata += 1,
            Ok(Line::SkipData) => self.result.skipdata += 1,
            // Logs concatenated (`cat a.gz b.gz`) repeat their header.
            Err(_) if is_header_of(line, layout) => {}
            Err(e) => {
                self.result.bad += 1;
                if self.result.bad_examples.len() < BAD_EXAMPLES {
                    self.result.bad_examples.push((number, e.to_string()));
                }
            }
        }
        Ok(Some(true))
    }
}

/// Whether `line` is a header naming `layout`'s fields (checked only for lines that are no
/// record, so it costs nothing on good input).
fn is_header_of(line: &[u8], layout: &Layout) -> bool {
    let text = String::from_utf8_lossy(line);
    matches!(Layout::from_header(&text), Ok(Some(l)) if l == *layout)
}

/// Passes reads through, reporting their sizes.
struct Counting<'a, R> {
    inner: R,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}
