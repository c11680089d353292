//! Flow-log inputs: files (plain or gzip, told apart by their first bytes), directories
//! (walked, in name order) and stdin (`-`), cut into units that worker threads read in
//! parallel. A plain file larger than [`CHUNK_BYTES`] is split into chunks at line
//! boundaries; a gzip file is one unit (a gzip stream cannot be entered in the middle), and
//! so are stdin and an S3 object: with more than one thread, the worker reading such a
//! sequential input hands runs of its lines ([`Block`]s) to idle workers, so that its
//! decompression and the parsing of its records run on several cores.

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

/// Lines of a sequential input cut off for any worker to parse: at most this many bytes of
/// them (or `--chunk-bytes`, if smaller).
pub const BLOCK_BYTES: usize = 1 << 20;

/// A run of consecutive lines of a sequential input (gzip, stdin, an S3 object), cut off by
/// the worker reading it so that another may parse them ([`parse_block`]).
#[derive(Debug)]
pub struct Block {
    /// Index of the unit the lines are from.
    pub unit: usize,
    /// Line number (1-based, within the unit) of the first line.
    pub first_line: u64,
    /// The lines, each ended by `\n` (a `\r` before it already removed).
    pub text: Vec<u8>,
    /// The input's layout.
    pub layout: Arc<Layout>,
}

/// Where the reader of a sequential input sends the [`Block`]s it cuts off.
pub trait BlockSink: Sync {
    /// Whether a worker waits for lines to parse (a block is started only then: cutting
    /// costs a copy of each line).
    fn wanted(&self) -> bool;
    /// Takes `block`, or gives it back when no worker can take it now (the reader then
    /// parses it itself).
    fn send(&self, block: Block) -> Option<Block>;
}

/// Records handed over at once ([`OnRecords`]): enough for the analysis to look a few
/// records ahead, few enough to stay in a core's cache (about 200 bytes each).
pub const BATCH: usize = 128;

/// Where a reader hands its records, in order, in runs of at most [`BATCH`].
pub type OnRecords<'a> = dyn FnMut(&[record::Record<'_>]) + 'a;

/// Counts the records of `block`, handing them to `on_records`: the counts and bad lines
/// (numbered within the unit) of a [`UnitResult`], without its line and byte totals, which
/// the reader of the input keeps.
pub fn parse_block(block: &Block, on_records: &mut OnRecords<'_>) -> UnitResult {
    let mut result = UnitResult::default();
    let mut batch = Vec::with_capacity(BATCH);
    let lines = block.text.split_inclusive(|&b| b == b'\n');
    for (number, line) in (block.first_line..).zip(lines) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        count_line(line, &block.layout, number, &mut result, &mut batch);
        if batch.len() == BATCH {
            on_records(&batch);
            batch.clear();
        }
    }
    on_records(&batch);
    result
}

impl UnitResult {
    /// Adds the counts and bad lines of `block`'s result (see [`parse_block`]), keeping the
    /// first [`BAD_EXAMPLES`] bad lines by number.
    pub fn absorb(&mut self, block: UnitResult) {
        self.records += block.records;
        self.nodata += block.nodata;
        self.skipdata += block.skipdata;
        self.bad += block.bad;
        self.bad_examples.extend(block.bad_examples);
        self.bad_examples.sort_by_key(|(line, _)| *line);
        self.bad_examples.truncate(BAD_EXAMPLES);
    }
}

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

/// Reads `unit` of `input`, handing its records to `on_records`; `progress` learns the
/// input bytes consumed (compressed bytes for gzip).
///
/// With `blocks` (`unit`'s index, the most bytes of lines a block holds, and where blocks
/// go), a sequential input's records are cut into [`Block`]s for other workers; the
/// result then holds the counts of the blocks this reader parsed itself.
pub fn read_unit(
    input: &Input,
    unit: Unit,
    format: Option<&Layout>,
    progress: &(dyn Fn(u64) + Sync),
    blocks: Option<(usize, usize, &dyn BlockSink)>,
    on_records: &mut OnRecords<'_>,
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
    // A plain file's chunks are read in parallel already; other inputs are sequential.
    let sequential = gzip || input.path.is_none();
    let mut scan = Scan {
        layout: input.layout.clone(),
        format,
        skip_partial: unit.start > 0,
        limit: unit.end.map(|e| e - unit.start + u64::from(unit.start > 0)),
        offset: 0,
        result: &mut result,
        on_records,
        blocks: blocks.filter(|_| sequential).map(|(unit, max, sink)| Cutter {
            unit,
            max: max.max(1),
            sink,
            layout: None,
            pending: None,
        }),
    };
    let outcome = if gzip {
        scan.run(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        scan.run(reader)
    };
    // The lines read before the end (or before a read failed) are counted too.
    scan.flush();
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
    on_records: &'b mut OnRecords<'b>,
    /// Where records go instead of being parsed here, for a sequential input.
    blocks: Option<Cutter<'a>>,
}

/// Cuts a sequential input's lines into [`Block`]s.
struct Cutter<'a> {
    unit: usize,
    max: usize,
    sink: &'a dyn BlockSink,
    /// The input's layout, shared by its blocks.
    layout: Option<Arc<Layout>>,
    /// The block being filled.
    pending: Option<Block>,
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
                match self.line(line_start, &buf[..filled], LineEnd::Overlong, &mut Vec::new())? {
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
            // The records of the buffer's lines, handed over before the buffer is refilled.
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(nl) = memchr::memchr(b'\n', &buf[at..filled]) {
                let line_start = self.offset;
                let line = &buf[at..at + nl];
                self.offset += nl as u64 + 1;
                at += nl + 1;
                let more = self.line(line_start, line, LineEnd::Newline, &mut batch);
                if batch.len() == BATCH || !matches!(more, Ok(Some(_))) {
                    (self.on_records)(&batch);
                    batch.clear();
                }
                if more?.is_none() {
                    return Ok(());
                }
            }
            (self.on_records)(&batch);
            drop(batch);
            buf.copy_within(at..filled, 0);
            filled -= at;
        }
        if filled > 0 && skipping.is_none() {
            let line_start = self.offset;
            let mut batch = Vec::with_capacity(1);
            let outcome = self.line(line_start, &buf[..filled], LineEnd::Eof, &mut batch);
            (self.on_records)(&batch);
            outcome?;
        }
        Ok(())
    }

    /// One line, its record (if it is one, parsed here) added to `batch`; `None` once the
    /// unit's lines are done, else whether the line was this unit's (a chunk's first,
    /// partial line is the previous chunk's).
    fn line<'l>(
        &mut self,
        start: u64,
        line: &'l [u8],
        end: LineEnd,
        batch: &mut Vec<record::Record<'l>>,
    ) -> Result<Option<bool>, ScanError> {
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
            // Counted here: the block being filled ends before it.
            self.flush();
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
        if let Some(cutter) = &mut self.blocks
            && (cutter.pending.is_some() || cutter.sink.wanted())
        {
            let block = match &mut cutter.pending {
                Some(block) => block,
                none => none.insert(Block {
                    unit: cutter.unit,
                    first_line: number,
                    text: Vec::with_capacity(cutter.max.min(BLOCK_BYTES) + 512),
                    layout: cutter.layout.get_or_insert_with(|| Arc::new(layout.clone())).clone(),
                }),
            };
            block.text.extend_from_slice(line);
            block.text.push(b'\n');
            if block.text.len() >= cutter.max {
                self.flush();
            }
            return Ok(Some(true));
        }
        count_line(line, layout, number, self.result, batch);
        Ok(Some(true))
    }

    /// Hands the block being filled to the sink, or parses it here if no worker can take it.
    fn flush(&mut self) {
        let Some(cutter) = &mut self.blocks else { return };
        let Some(block) = cutter.pending.take() else { return };
        if let Some(block) = cutter.sink.send(block) {
            let counted = parse_block(&block, self.on_records);
            self.result.absorb(counted);
        }
    }
}

/// Parses one line (number `number`), counts it in `result` and adds its record, if it is
/// one, to `batch`; a blank line counts as nothing.
fn count_line<'l>(
    line: &'l [u8],
    layout: &Layout,
    number: u64,
    result: &mut UnitResult,
    batch: &mut Vec<record::Record<'l>>,
) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match record::parse(line, layout) {
        Ok(Line::Record(r)) => {
            result.records += 1;
            batch.push(r);
        }
        Ok(Line::NoData) => result.nodata += 1,
        Ok(Line::SkipData) => result.skipdata += 1,
        // Logs concatenated (`cat a.gz b.gz`) repeat their header.
        Err(_) if is_header_of(line, layout) => {}
        Err(e) => {
            result.bad += 1;
            if result.bad_examples.len() < BAD_EXAMPLES {
                result.bad_examples.push((number, e.to_string()));
            }
        }
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

#[cfg(test)]
mod tests {
    use std::{io::Write, sync::Mutex};

    use super::*;

    /// Takes every block but each third (given back: the reader parses those itself).
    #[derive(Default)]
    struct Collect {
        blocks: Mutex<Vec<Block>>,
        offered: std::sync::atomic::AtomicUsize,
    }

    impl BlockSink for Collect {
        fn wanted(&self) -> bool {
            true
        }

        fn send(&self, block: Block) -> Option<Block> {
            let n = self.offered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n % 3 == 2 {
                return Some(block);
            }
            self.blocks.lock().unwrap().push(block);
            None
        }
    }

    const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

    /// A gzip file of two members (the second repeating the header, as `cat a.gz b.gz`
    /// makes) with bad, blank, NODATA and overlong lines among 2,000 records.
    fn gzip_log(dir: &Path) -> PathBuf {
        let mut text = format!("{HEADER}\n");
        for i in 0..2000u32 {
            text += &match i % 101 {
                0 => "2 1 eni-1 10.0.0.300 10.0.0.2 1 2 6 1 40 1 2 ACCEPT OK\n".to_owned(),
                100 => "\n".to_owned(),
                9 => "2 1 eni-1 - - - - - - - 1 2 - NODATA\n".to_owned(),
                49 if i == 150 => format!("{}\n", "x".repeat(READ_BYTES + 10)),
                _ => format!(
                    "2 1 eni-1 10.0.0.{} 203.0.113.{} 443 {i} 6 2 {i} 1 2 ACCEPT OK\n",
                    i % 9,
                    i % 13
                ),
            };
            if i == 1000 {
                text += &format!("{HEADER}\n");
            }
        }
        let half = text.len() / 2;
        let mut file = Vec::new();
        for member in [&text[..half], &text[half..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(member.as_bytes()).unwrap();
            file.extend(e.finish().unwrap());
        }
        let path = dir.join("two-members.log.gz");
        std::fs::write(&path, file).unwrap();
        path
    }

    #[test]
    fn blocks_of_a_sequential_input_count_as_one_reading_with_the_same_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let input = open_input(&gzip_log(dir.path()), None).unwrap();
        assert!(input.gzip);
        let unit = Unit { input: 0, chunk: 0, start: 0, end: None };
        let read = |blocks: Option<(usize, usize, &dyn BlockSink)>| {
            let mut bytes = Vec::new();
            let r = read_unit(&input, unit, None, &|_| {}, blocks, &mut |recs| {
                bytes.extend(recs.iter().map(|r| r.bytes))
            });
            (r, bytes)
        };
        let (whole, whole_bytes) = read(None);
        assert_eq!((whole.records, whole.nodata, whole.bad), (2000 - 20 - 19 - 20 - 1, 20, 20 + 1));
        assert_eq!(whole.bad_examples.len(), BAD_EXAMPLES);
        assert!(whole.error.is_none(), "{:?}", whole.error);

        for max in [1, 300, 4096] {
            let sink = Collect::default();
            let (mut cut, mut bytes) = read(Some((0, max, &sink)));
            let blocks = sink.blocks.into_inner().unwrap();
            assert!(blocks.len() > 3, "{} blocks of at most {max} bytes", blocks.len());
            assert!(cut.records < whole.records, "the reader gave blocks away");
            for block in &blocks {
                assert_eq!(block.text.last(), Some(&b'\n'));
                cut.absorb(parse_block(block, &mut |recs| {
                    bytes.extend(recs.iter().map(|r| r.bytes))
                }));
            }
            assert_eq!(
                (cut.lines, cut.bytes, cut.records, cut.nodata, cut.skipdata, cut.bad),
                (whole.lines, whole.bytes, whole.records, whole.nodata, whole.skipdata, whole.bad),
                "blocks of at most {max} bytes"
            );
            assert_eq!(cut.bad_examples, whole.bad_examples, "blocks of at most {max} bytes");
            bytes.sort_unstable();
            let mut want = whole_bytes.clone();
            want.sort_unstable();
            assert_eq!(bytes, want, "every record once, blocks of at most {max} bytes");
        }
    }
}
