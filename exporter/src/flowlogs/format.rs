//! The layout of a flow-log file: which field each space-separated column holds.
//!
//! AWS delivers VPC Flow Logs to S3 as text with one header line naming the fields of the
//! log's format, in order (`version account-id interface-id srcaddr …`). Files without a
//! header (CloudWatch exports, hand-made samples) take the layout from `--format` (the log's
//! `LogFormat` string, `${version} ${srcaddr} …`, or the names alone), else from the number
//! of columns when it is that of one of AWS's "all fields" formats: 14 (the default format,
//! version 2), 29 (every field up to version 5), 39 (up to version 7), 40 (up to version 8).
//! Field names and order: <https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html>
//! (read 2026-12-04).

/// The fields of AWS's formats, in the order of "all fields" (version 2 to 8).
pub const AWS_FIELDS: [&str; 40] = [
    // Version 2: the default format.
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    // Versions 3 to 5.
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    // Version 7: ECS.
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    // Version 8.
    "reject-reason",
];

/// Column counts of AWS's "all fields up to version N" formats, which a header-less file
/// may be read with.
const ALL_FIELDS_PREFIXES: [usize; 4] = [14, 29, 39, 40];

/// A field egressor reads. Every other field is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// `interface-id`: the ENI the record was captured on.
    InterfaceId,
    /// `srcaddr`.
    SrcAddr,
    /// `dstaddr`.
    DstAddr,
    /// `packets`.
    Packets,
    /// `bytes`: IP packet bytes, as billed.
    Bytes,
    /// `action`: ACCEPT or REJECT.
    Action,
    /// `log-status`: OK, NODATA or SKIPDATA.
    LogStatus,
    /// `subnet-id`.
    SubnetId,
    /// `pkt-srcaddr`: the packet's source behind an intermediate hop (a NAT gateway).
    PktSrcAddr,
    /// `pkt-dstaddr`.
    PktDstAddr,
    /// `az-id`: the zone ID of the interface.
    AzId,
    /// `pkt-src-aws-service`.
    PktSrcAwsService,
    /// `pkt-dst-aws-service`.
    PktDstAwsService,
    /// `flow-direction`: ingress or egress, from the interface's point of view.
    FlowDirection,
    /// `traffic-path`: how egress leaves (1–8).
    TrafficPath,
    /// `end`: when the last packet of the aggregation interval was seen (Unix seconds).
    End,
}

impl Field {
    /// Every field egressor reads.
    pub const ALL: [Field; 16] = [
        Self::InterfaceId,
        Self::SrcAddr,
        Self::DstAddr,
        Self::Packets,
        Self::Bytes,
        Self::Action,
        Self::LogStatus,
        Self::SubnetId,
        Self::PktSrcAddr,
        Self::PktDstAddr,
        Self::AzId,
        Self::PktSrcAwsService,
        Self::PktDstAwsService,
        Self::FlowDirection,
        Self::TrafficPath,
        Self::End,
    ];

    /// Its name in AWS's formats.
    pub fn name(self) -> &'static str {
        match self {
            Self::InterfaceId => "interface-id",
            Self::SrcAddr => "srcaddr",
            Self::DstAddr => "dstaddr",
            Self::Packets => "packets",
            Self::Bytes => "bytes",
            Self::Action => "action",
            Self::LogStatus => "log-status",
            Self::SubnetId => "subnet-id",
            Self::PktSrcAddr => "pkt-srcaddr",
            Self::PktDstAddr => "pkt-dstaddr",
            Self::AzId => "az-id",
            Self::PktSrcAwsService => "pkt-src-aws-service",
            Self::PktDstAwsService => "pkt-dst-aws-service",
            Self::FlowDirection => "flow-direction",
            Self::TrafficPath => "traffic-path",
            Self::End => "end",
        }
    }
}

/// Which column holds each field egressor reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Columns per record.
    pub columns: usize,
    /// For each column, the field it holds (`None`: skipped).
    pub by_column: Vec<Option<Field>>,
    /// For each [`Field`] (by its discriminant), its column.
    pub column_of: [Option<usize>; Field::ALL.len()],
}

/// Why a header or `--format` is not a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A name that is none of AWS's fields.
    #[error("unknown field {0:?} (fields: {list})", list = AWS_FIELDS.join(" "))]
    UnknownField(String),
    /// A field named twice.
    #[error("field {0:?} named twice")]
    Duplicate(String),
    /// Without srcaddr and dstaddr no record has ends.
    #[error("no {0} field: a record needs srcaddr and dstaddr to be counted")]
    Missing(&'static str),
}

impl Layout {
    /// The layout of fields named in order (a header line's words, or `--format`).
    ///
    /// # Errors
    /// An unknown or repeated name, or a format without `srcaddr` or `dstaddr`. (A format
    /// without `bytes` is a layout: its records count flows, with 0 bytes.)
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, LayoutError> {
        let mut by_column = Vec::new();
        let mut column_of = [None; Field::ALL.len()];
        let mut seen = std::collections::HashSet::new();
        for (column, name) in names.into_iter().enumerate() {
            if !AWS_FIELDS.contains(&name) {
                return Err(LayoutError::UnknownField(name.to_owned()));
            }
            if !seen.insert(name) {
                return Err(LayoutError::Duplicate(name.to_owned()));
            }
            let field = Field::ALL.into_iter().find(|f| f.name() == name);
            if let Some(f) = field {
                column_of[f as usize] = Some(column);
            }
            by_column.push(field);
        }
        let layout = Self { columns: by_column.len(), by_column, column_of };
        for f in [Field::SrcAddr, Field::DstAddr] {
            if layout.column(f).is_none() {
                return Err(LayoutError::Missing(f.name()));
            }
        }
        Ok(layout)
    }

    /// A `--format` value: AWS's `LogFormat` (`${version} ${srcaddr} …`) or the names
    /// separated by spaces.
    ///
    /// # Errors
    /// As [`Layout::from_names`].
    pub fn from_format(format: &str) -> Result<Self, LayoutError> {
        Self::from_names(
            format.split_whitespace().map(|w| w.trim_start_matches("${").trim_end_matches('}')),
        )
    }

    /// The layout of a file's first line when it is a header (every word a field name).
    /// `Ok(None)`: the line is a record, not a header.
    ///
    /// # Errors
    /// A header that names fields but is not a valid layout.
    pub fn from_header(line: &str) -> Result<Option<Self>, LayoutError> {
        let mut words = line.split_whitespace().peekable();
        // A record starts with a number (version) or an ID; a header with a field name.
        match words.peek() {
            Some(first) if AWS_FIELDS.contains(first) => Self::from_names(words).map(Some),
            _ => Ok(None),
        }
    }

    /// AWS's "all fields up to version N" layout with `columns` columns, if one has that
    /// many (14, 29, 39 or 40).
    pub fn all_fields(columns: usize) -> Option<Self> {
        ALL_FIELDS_PREFIXES
            .contains(&columns)
            .then(|| Self::from_names(AWS_FIELDS[..columns].iter().copied()).expect("AWS's own"))
    }

    /// The column of `field`, if the layout has it.
    pub fn column(&self, field: Field) -> Option<usize> {
        self.column_of[field as usize]
    }

    /// Whether the layout has the packet-level addresses (`pkt-srcaddr` and `pkt-dstaddr`).
    pub fn has_packet_addresses(&self) -> bool {
        self.column(Field::PktSrcAddr).is_some() && self.column(Field::PktDstAddr).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_formats_and_column_counts() {
        let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol \
                      packets bytes start end action log-status";
        let l = Layout::from_header(header).unwrap().unwrap();
        assert_eq!(l, Layout::all_fields(14).unwrap());
        assert_eq!((l.columns, l.column(Field::Bytes), l.column(Field::AzId)), (14, Some(9), None));
        assert_eq!(Layout::from_header("2 123456789010 eni-1 …").unwrap(), None, "a record");
        let f = Layout::from_format("${srcaddr} ${dstaddr} ${bytes} ${pkt-dstaddr}").unwrap();
        assert_eq!((f.columns, f.column(Field::PktDstAddr)), (4, Some(3)));
        assert!(!f.has_packet_addresses());
        assert_eq!(Layout::all_fields(29).unwrap().column(Field::TrafficPath), Some(28));
        assert_eq!(Layout::all_fields(40).unwrap().columns, 40);
        assert!(Layout::all_fields(17).is_none());
        assert_eq!(
            Layout::from_format("srcaddr dstaddr bytez"),
            Err(LayoutError::UnknownField("bytez".into()))
        );
        assert_eq!(
            Layout::from_header("srcaddr dstaddr srcaddr bytes"),
            Err(LayoutError::Duplicate("srcaddr".into()))
        );
        assert_eq!(Layout::from_format("srcaddr bytes"), Err(LayoutError::Missing("dstaddr")));
        assert_eq!(Layout::from_format("srcaddr dstaddr").unwrap().column(Field::Bytes), None);
    }
}
