//! Command line: `egressor agent` and its flags, following Prometheus exporter conventions
//! (`--web.listen-address`, `--web.telemetry-path`, dotted flag names, an `EGRESSOR_*`
//! environment variable for every flag).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default listen address: loopback, so the quick start exposes nothing.
///
/// Port 10730 lies outside 9100–9999, which Prometheus' "default port allocations" wiki
/// page had handed out in full by 2023, and outside Prometheus' own 9090–9094.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:10730";
/// Default path of the OpenMetrics endpoint.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
/// Default interval between two reads of the kernel maps.
pub const DEFAULT_READ_INTERVAL: &str = "10s";
/// Default time a flow may stay unchanged before its kernel map entry is removed.
pub const DEFAULT_FLOW_IDLE_TIMEOUT: &str = "2m";
/// Default cap on live label sets of the flow counters.
pub const DEFAULT_SERIES_MAX: usize = 20_000;
/// Default number of remote names kept per workload.
pub const DEFAULT_REMOTE_NAMES_TOP_K: usize = 20;
/// Default window over which remote names are ranked.
pub const DEFAULT_REMOTE_NAMES_WINDOW: &str = "1h";
/// Default time a label set without flows keeps being exposed after its last growth.
pub const DEFAULT_SERIES_IDLE_TIMEOUT: &str = "1h";

/// egressor: who moves data where, and what it costs.
#[derive(Debug, Parser)]
#[command(name = "egressor", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    /// What to run.
    pub command: Command,
}

#[derive(Debug, Subcommand)]
/// egressor's subcommands.
pub enum Command {
    /// Load the eBPF programs, count this machine's traffic and serve OpenMetrics.
    Agent(Box<AgentArgs>),
    /// Print what the agent would decide for remote addresses: class, provider, service,
    /// region, egress path and price per GiB each way.
    Classify(ClassifyArgs),
    /// Print the effective price sheet (YAML), or list the embedded ones.
    Prices(PricesArgs),
    /// Show a running agent's top flows, refreshing (like kubectl top or iftop).
    Top(TopArgs),
    /// Print the Prometheus rule bundle (recording rules and alerts) for a values file.
    Rules(RulesArgs),
    /// Write the Grafana dashboards (JSON and Kubernetes ConfigMaps) for a values file.
    Dashboards(DashboardsArgs),
    /// Receive Alertmanager webhooks, gather the numbers from Prometheus, post to Slack.
    Explainer(Box<ExplainerArgs>),
    /// Ask a question about egress and its cost; Claude answers from Prometheus queries it
    /// runs (bounded), citing them.
    Ask(Box<AskArgs>),
    /// Print the Kubernetes objects that run the agent and the explainer (YAML), as in
    /// deploy/kubernetes/egressor.yaml.
    Manifests(ManifestsArgs),
    /// Analyse AWS VPC Flow Logs (files, directories, gzip, stdin, S3) with the agent's
    /// classifier and price sheets: who talks to the internet, through which NAT gateway,
    /// what it costs and what to change.
    Flowlogs(Box<FlowLogsArgs>),
    /// Detach the programs an agent left pinned (--bpf.pin-path) and delete its checkpoint:
    /// for uninstalling.
    Unpin(UnpinArgs),
}

/// Flags of `egressor flowlogs`.
#[derive(Debug, Args)]
pub struct FlowLogsArgs {
    /// Flow-log files (plain or gzip), directories (read recursively, in name order), `-`
    /// for stdin, or `s3://BUCKET/PREFIX` (credentials, region and endpoint from AWS's
    /// default chain, as the AWS tools read it: AWS_* variables, the AWS_PROFILE profile of
    /// ~/.aws/credentials and ~/.aws/config, web identity, ECS, EC2 instance profile).
    #[arg(required = true, value_name = "FILE|DIR|-|s3://BUCKET/PREFIX")]
    pub inputs: Vec<PathBuf>,

    /// First day read (YYYY-MM-DD, inclusive), by the date in AWS's key layout
    /// (…/vpcflowlogs/REGION/YYYY/MM/DD/…) of S3 keys and file paths; others are read.
    #[arg(long = "since", value_name = "DATE")]
    pub since: Option<String>,

    /// Last day read (YYYY-MM-DD, inclusive).
    #[arg(long = "until", value_name = "DATE")]
    pub until: Option<String>,

    /// The log's format for files without a header line: AWS's `LogFormat`
    /// (`${version} ${srcaddr} …`) or the field names separated by spaces. Files with a
    /// header are read by their header [default: the header, else AWS's default or
    /// all-fields format by the number of fields]
    #[arg(long = "format", value_name = "FORMAT")]
    pub format: Option<String>,

    /// Private address of a NAT gateway whose interface the logs include (repeatable): its
    /// records are read as NAT traffic, each byte counted once.
    #[arg(long = "nat-gateway", value_name = "ADDR")]
    pub nat_gateways: Vec<std::net::IpAddr>,

    /// Print the report as JSON instead of the summary.
    #[arg(long = "json")]
    pub json: bool,

    /// Also write the agent's flow counters (egressor_flow_*_total, hook="flowlogs"), one
    /// sample per series and minute of the records' `end`, as OpenMetrics text with
    /// timestamps: load it with `promtool tsdb create-blocks-from openmetrics FILE DIR`.
    #[arg(long = "openmetrics", value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,

    /// Rows of sources and destinations shown.
    #[arg(long = "top", default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Worker threads [default: one per core].
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,

    /// Local addresses each thread keeps apart; more are summed as `other` (bounds memory:
    /// ~100 bytes each).
    #[arg(long = "max-sources", default_value_t = 100_000, value_name = "N")]
    pub max_sources: usize,

    /// Remote addresses each thread keeps apart; more are summed as other destinations
    /// (bounds memory: 128-256 bytes each; 16 MiB at the default, 24 MiB while growing).
    #[arg(long = "max-destinations", default_value_t = 100_000, value_name = "N")]
    pub max_destinations: usize,

    /// Size of the chunks plain files are split into for parallel reading, and the most
    /// bytes of lines a sequential input hands to another thread at once (for tests).
    #[arg(long = "chunk-bytes", hide = true, default_value_t = crate::flowlogs::input::CHUNK_BYTES)]
    pub chunk_bytes: u64,

    #[command(flatten)]
    /// Configuration file and price sheet.
    pub setup: SetupArgs,
}

/// Flags of `egressor unpin`.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The agent's --bpf.pin-path.
    #[arg(long = "bpf.pin-path", env = "EGRESSOR_BPF_PIN_PATH", value_name = "DIR")]
    pub pin_path: PathBuf,
    /// The agent's --bpf.checkpoint-file.
    #[arg(
        long = "bpf.checkpoint-file",
        env = "EGRESSOR_BPF_CHECKPOINT_FILE",
        default_value = "/run/egressor/checkpoint",
        value_name = "FILE"
    )]
    pub checkpoint_file: PathBuf,
}

/// Flags of `egressor explainer`.
#[derive(Debug, Args)]
pub struct ExplainerArgs {
    /// Address to serve the webhook receiver and /metrics on.
    #[arg(
        long = "web.listen-address",
        env = "EGRESSOR_EXPLAINER_LISTEN_ADDRESS",
        default_value = "127.0.0.1:10731",
        value_name = "ADDR:PORT"
    )]
    pub listen_address: std::net::SocketAddr,
    /// Largest webhook body accepted, in bytes (larger ones get 413).
    #[arg(long = "web.max-body-bytes", default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Prometheus to ask for the alerts' numbers (`http://prometheus:9090`).
    #[arg(long = "prometheus.url", env = "EGRESSOR_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: String,
    /// Timeout of each Prometheus query.
    #[arg(long = "prometheus.timeout", default_value = "10s", value_parser = parse_duration,
          value_name = "DURATION")]
    pub query_timeout: Duration,
    /// The values file the rule bundle was generated from (names its recording rules).
    #[arg(long = "rules.values", value_name = "FILE")]
    pub rules_values: Option<PathBuf>,
    /// File holding the Slack incoming-webhook URL (a secret); without it summaries are
    /// only logged.
    #[arg(
        long = "slack.webhook-url-file",
        env = "EGRESSOR_SLACK_WEBHOOK_URL_FILE",
        value_name = "FILE"
    )]
    pub slack_webhook_url_file: Option<PathBuf>,
    /// File holding a Slack bot token (`xoxb-…`, scope `chat:write`): messages go through
    /// `chat.postMessage` to --slack.channel, and later messages of an alert group (the
    /// resolved one) into the first one's thread. Takes precedence over the webhook.
    #[arg(
        long = "slack.bot-token-file",
        env = "EGRESSOR_SLACK_BOT_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub slack_bot_token_file: Option<PathBuf>,
    /// Channel of the bot's messages (id such as `C0123ABCD`, or name).
    #[arg(long = "slack.channel", value_name = "CHANNEL")]
    pub slack_channel: Option<String>,
    /// Slack's Web API base URL.
    #[arg(long = "slack.api-url", default_value = "https://slack.com/api/", value_name = "URL")]
    pub slack_api_url: String,
    /// File holding the bearer token webhooks must carry (Alertmanager's
    /// `http_config.authorization.credentials_file`).
    #[arg(long = "auth.bearer-token-file", value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// User of HTTP basic auth webhooks must carry (with --auth.basic-password-file).
    #[arg(long = "auth.basic-user", value_name = "USER")]
    pub basic_user: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long = "auth.basic-password-file", value_name = "FILE")]
    pub basic_password_file: Option<PathBuf>,
    /// The model.
    #[command(flatten)]
    pub claude: ClaudeArgs,
    /// `POST /api/v1/ask`'s limits.
    #[command(flatten)]
    pub ask: AskLimitsArgs,
    /// How long a notification (group, status, alerts) is remembered to drop repeats.
    #[arg(long = "dedupe.ttl", default_value = "1h", value_parser = parse_duration,
          value_name = "DURATION")]
    pub dedupe_ttl: Duration,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long = "log.level", env = "EGRESSOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// How to reach Claude, and what is redacted before it does (`explainer`, `ask`).
#[derive(Debug, Args)]
pub struct ClaudeArgs {
    /// File holding the Anthropic API key (explainer: without it the deterministic summary
    /// is posted).
    #[arg(
        long = "claude.api-key-file",
        env = "EGRESSOR_ANTHROPIC_API_KEY_FILE",
        value_name = "FILE"
    )]
    pub api_key_file: Option<PathBuf>,
    /// The Anthropic API's base URL.
    #[arg(long = "claude.url", default_value = "https://api.anthropic.com", value_name = "URL")]
    pub url: String,
    /// The model id (see <https://docs.anthropic.com/en/docs/about-claude/models>).
    #[arg(
        long = "claude.model",
        env = "EGRESSOR_CLAUDE_MODEL",
        default_value = "claude-sonnet-4-5",
        value_name = "ID"
    )]
    pub model: String,
    /// Largest reply, in tokens (`max_tokens`).
    #[arg(long = "claude.max-tokens", default_value_t = 1024, value_name = "TOKENS")]
    pub max_tokens: u32,
    /// Timeout of one request to the model.
    #[arg(long = "claude.timeout", default_value = "30s", value_parser = parse_duration,
          value_name = "DURATION")]
    pub timeout: Duration,
    /// The model's answer, retries included, is given up on after this (then the
    /// deterministic summary is posted).
    #[arg(long = "claude.deadline", default_value = "45s", value_parser = parse_duration,
          value_name = "DURATION")]
    pub deadline: Duration,
    /// Attempts per request (429, 500, 529, timeouts are retried).
    #[arg(long = "claude.attempts", default_value_t = 4, value_name = "N")]
    pub attempts: u32,
    /// What pod names become before anything reaches the model (IP addresses are always
    /// replaced).
    #[arg(long = "redact.pod-names", value_enum, default_value = "hash")]
    pub redact_pod_names: crate::explainer::redact::PodNames,
}

/// Bounds of the `ask` tool loop.
#[derive(Debug, Args)]
pub struct AskLimitsArgs {
    /// Most tool calls (Prometheus queries) the model may make for one question.
    #[arg(long = "ask.max-tool-calls", default_value_t = 8, value_name = "N")]
    pub max_tool_calls: usize,
    /// Most rows (series, label values) of one tool result the model sees.
    #[arg(long = "ask.max-rows", default_value_t = 20, value_name = "N")]
    pub max_rows: usize,
}

/// Flags of `egressor ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, in plain words.
    #[arg(value_name = "QUESTION")]
    pub question: String,
    /// Prometheus to query (`http://prometheus:9090`).
    #[arg(long = "prometheus.url", env = "EGRESSOR_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: String,
    /// Timeout of each Prometheus query.
    #[arg(long = "prometheus.timeout", default_value = "10s", value_parser = parse_duration,
          value_name = "DURATION")]
    pub query_timeout: Duration,
    /// The model.
    #[command(flatten)]
    pub claude: ClaudeArgs,
    /// The tool loop's limits.
    #[command(flatten)]
    pub limits: AskLimitsArgs,
    /// Print the answer as JSON (`answer`, `queries`, `tool_calls`).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `egressor manifests`.
#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// Values files over the chart's `values.yaml` (deploy/helm/egressor), merged in order
    /// the way `helm install -f` merges them; repeatable.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Release name: objects are `<name>-egressor-*`, or `<name>-*` when it contains
    /// `egressor`.
    #[arg(long = "name", default_value = "egressor", value_name = "RELEASE")]
    pub name: String,
    /// Namespace of the namespaced objects.
    #[arg(long = "namespace", default_value = "egressor", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Which objects: `core` (Namespace, RBAC, agent, explainer), `monitoring`
    /// (ServiceMonitor, PrometheusRule, dashboards; needs prometheus-operator) or `all`.
    #[arg(long = "part", value_enum, default_value = "all")]
    pub part: crate::manifests::Part,
}

/// Flags of `egressor dashboards`.
#[derive(Debug, Args)]
pub struct DashboardsArgs {
    /// Thresholds and windows (see alerts/values.yaml): the dashboards name the recording
    /// rules `egressor rules` generates for the same file.
    #[arg(long = "values", value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Directory to write `dashboards/*.json` and `dashboards.configmap.yaml` into.
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,
}

/// Flags of `egressor rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Thresholds and windows (see alerts/values.yaml); omitted fields keep the defaults.
    #[arg(long = "values", value_name = "FILE")]
    pub values: Option<PathBuf>,
}

/// Which kernel hooks count traffic. Each byte is counted once unless `both` is asked for;
/// the `hook` label keeps the two apart so that no sum adds them up by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookMode {
    /// cgroup_skb on the cgroup v2 root, or TC when `--interface` is given.
    Auto,
    /// cgroup_skb only: per socket and workload, before NAT.
    Cgroup,
    /// TC on the `--interface` list only: per interface, as on the wire.
    Tc,
    /// Both hooks: a socket's packet on a listed interface is counted once per hook, and
    /// the `hook` label keeps the two apart.
    Both,
}

/// Whether the agent attributes flows through the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubernetesMode {
    /// On in a cluster (KUBERNETES_SERVICE_HOST) or with --kubeconfig.
    Auto,
    /// On; fails to start without a usable configuration.
    On,
    /// Off: cgroup paths name workloads, as on any host.
    Off,
}

/// How TC programs attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TcAttachMode {
    /// TCX links on kernels ≥ 6.6, a clsact qdisc and netlink filters before.
    Auto,
    /// TCX links (kernel ≥ 6.6).
    Tcx,
    /// clsact qdisc with netlink filters (any kernel with eBPF TC).
    Clsact,
}

/// The configuration file and price sheet: shared by `agent`, `classify` and `prices`, so
/// that each decides exactly as the agent would.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// YAML file: this node's zone, region and provider, named networks, subnets and their
    /// egress paths, cloud range sources, pricing options. See README "Configuration".
    #[arg(long = "config.file", env = "EGRESSOR_CONFIG_FILE", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Price sheet: an embedded one by name (`aws/us-east-1`, see `egressor prices --list`)
    /// or a YAML file [default: the embedded sheet of the node's provider and region, else
    /// aws/us-east-1].
    #[arg(long = "prices", env = "EGRESSOR_PRICES", value_name = "NAME|FILE")]
    pub prices: Option<PathBuf>,

    /// MaxMind ASN database (GeoLite2-ASN .mmdb): the AS organisation names external peers
    /// that have no other name.
    #[arg(long = "geoip-asn", env = "EGRESSOR_GEOIP_ASN", value_name = "FILE")]
    pub geoip_asn: Option<PathBuf>,

    /// MaxMind Country or City database (.mmdb): the `remote_country` of external peers.
    #[arg(long = "geoip-country", env = "EGRESSOR_GEOIP_COUNTRY", value_name = "FILE")]
    pub geoip_country: Option<PathBuf>,
}

/// Flags of `egressor classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Remote addresses to classify (IPv4 or IPv6).
    #[arg(required = true, value_name = "ADDR")]
    pub addresses: Vec<std::net::IpAddr>,

    /// The local end's address, which selects the subnet and so the egress path.
    #[arg(long = "from", value_name = "ADDR")]
    pub from: Option<std::net::IpAddr>,

    /// Print JSON (one array) instead of text.
    #[arg(long = "json")]
    pub json: bool,

    /// Ask the running agent at this base URL (`/api/v1/classify`) instead of deciding
    /// here: adds the names its DNS capture learned, its Kubernetes peers and this month's
    /// price tiers. The setup flags are then the agent's, not these.
    #[arg(long = "agent", env = "EGRESSOR_URL", value_name = "URL")]
    pub agent: Option<String>,

    /// File with the agent's bearer token (`--web.api.bearer-token-file` there).
    #[arg(long = "bearer-token-file", env = "EGRESSOR_BEARER_TOKEN_FILE", value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,

    #[command(flatten)]
    /// Configuration file and price sheet.
    pub setup: SetupArgs,
}

/// Flags of `egressor top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The agent's base URL.
    #[arg(long = "url", env = "EGRESSOR_URL", default_value = "http://127.0.0.1:10730")]
    pub url: String,

    /// Sort by cost, bytes or the last cycle's rate.
    #[arg(long = "sort", value_enum, default_value_t = TopSort::Cost)]
    pub sort: TopSort,

    /// Flows shown.
    #[arg(long = "top", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,

    /// Time between refreshes.
    #[arg(long = "interval", default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Print once and exit (for scripts).
    #[arg(long = "once")]
    pub once: bool,

    /// File with the agent's bearer token (`--web.api.bearer-token-file` there).
    #[arg(long = "bearer-token-file", env = "EGRESSOR_BEARER_TOKEN_FILE", value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
}

/// Sort key of `egressor top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopSort {
    /// Cost since first counted.
    Cost,
    /// Bytes since first counted.
    Bytes,
    /// Bytes per second in the last read cycle.
    Rate,
}

impl TopSort {
    /// The API's `sort` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cost => "cost",
            Self::Bytes => "bytes",
            Self::Rate => "rate",
        }
    }
}

/// Flags of `egressor prices`.
#[derive(Debug, Args)]
pub struct PricesArgs {
    /// List the embedded sheets instead.
    #[arg(long = "list")]
    pub list: bool,

    #[command(flatten)]
    /// Configuration file and price sheet.
    pub setup: SetupArgs,
}

#[derive(Debug, Args)]
/// Flags of `egressor agent`; each has an `EGRESSOR_*` environment variable.
pub struct AgentArgs {
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long = "web.listen-address", env = "EGRESSOR_WEB_LISTEN_ADDRESS",
          default_value = DEFAULT_LISTEN_ADDRESS, value_name = "ADDR:PORT")]
    pub listen_address: SocketAddr,

    /// Path under which OpenMetrics are served.
    #[arg(long = "web.telemetry-path", env = "EGRESSOR_WEB_TELEMETRY_PATH",
          default_value = DEFAULT_TELEMETRY_PATH, value_name = "PATH")]
    pub telemetry_path: String,

    #[command(flatten)]
    /// Configuration file and price sheet.
    pub setup: SetupArgs,

    /// Client networks allowed to call /api/v1/* (and the telemetry path with
    /// --web.guard-metrics); repeatable.
    #[arg(long = "web.api.allow", env = "EGRESSOR_WEB_API_ALLOW", value_delimiter = ',',
          default_values = ["127.0.0.0/8", "::1/128"], value_name = "CIDR")]
    pub api_allow: Vec<ipnet::IpNet>,

    /// File holding a bearer token that /api/v1/* (and the telemetry path with
    /// --web.guard-metrics) require in `Authorization: Bearer …`.
    #[arg(
        long = "web.api.bearer-token-file",
        env = "EGRESSOR_WEB_API_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub api_bearer_token_file: Option<PathBuf>,

    /// Put the telemetry path behind the same allowlist and token as the API.
    #[arg(long = "web.guard-metrics", env = "EGRESSOR_WEB_GUARD_METRICS")]
    pub guard_metrics: bool,

    /// Attach TC programs to this interface (repeatable). Switches counting from cgroup
    /// hooks to TC unless `--hook both`.
    #[arg(
        long = "interface",
        env = "EGRESSOR_INTERFACES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub interfaces: Vec<String>,

    /// Which hooks count traffic.
    #[arg(long = "hook", env = "EGRESSOR_HOOK", value_enum, default_value_t = HookMode::Auto)]
    pub hook: HookMode,

    /// How TC programs attach.
    #[arg(long = "tc.attach-mode", env = "EGRESSOR_TC_ATTACH_MODE", value_enum,
          default_value_t = TcAttachMode::Auto)]
    pub tc_attach_mode: TcAttachMode,

    /// cgroup v2 directory to attach the cgroup_skb programs to [default: the cgroup2
    /// mount found in /proc/self/mountinfo].
    #[arg(long = "cgroup.path", env = "EGRESSOR_CGROUP_PATH", value_name = "DIR")]
    pub cgroup_path: Option<PathBuf>,

    /// Count traffic on loopback interfaces too (excluded by default: it never crosses a
    /// network and is never billed).
    #[arg(long = "include-loopback", env = "EGRESSOR_INCLUDE_LOOPBACK")]
    pub include_loopback: bool,

    /// Interval between two reads of the kernel's flow map, e.g. 10s, 1m.
    #[arg(long = "read-interval", env = "EGRESSOR_READ_INTERVAL",
          default_value = DEFAULT_READ_INTERVAL, value_parser = parse_duration,
          value_name = "DURATION")]
    pub read_interval: Duration,

    /// Maximum entries in the kernel flow map. Packets of flows that find no room are
    /// counted in egressor_flow_overflow_*_total.
    #[arg(long = "flow-map.max-entries", env = "EGRESSOR_FLOW_MAP_MAX_ENTRIES",
          default_value_t = egressor_common::DEFAULT_FLOW_MAP_ENTRIES,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub flow_map_max_entries: u32,

    /// bpffs directory to pin the counter maps and program links in, so that a restarted or
    /// upgraded agent carries on where the last one stopped (no gap, no double count). The
    /// programs keep counting while no agent runs; `egressor unpin` removes them. Unset:
    /// everything detaches when the agent exits.
    #[arg(long = "bpf.pin-path", env = "EGRESSOR_BPF_PIN_PATH", value_name = "DIR")]
    pub pin_path: Option<PathBuf>,

    /// With --bpf.pin-path: the file that keeps, after every read cycle, each flow's counts
    /// already exported and each label set's totals, so a new agent resumes the counters
    /// exactly. Put it on a tmpfs (it is only valid until reboot, like the pins).
    #[arg(
        long = "bpf.checkpoint-file",
        env = "EGRESSOR_BPF_CHECKPOINT_FILE",
        default_value = "/run/egressor/checkpoint",
        value_name = "FILE"
    )]
    pub checkpoint_file: PathBuf,

    /// A flow unchanged for this long has its kernel map entry removed (its final counts
    /// are kept), making room for new flows.
    #[arg(long = "flow.idle-timeout", env = "EGRESSOR_FLOW_IDLE_TIMEOUT",
          default_value = DEFAULT_FLOW_IDLE_TIMEOUT, value_parser = parse_duration,
          value_name = "DURATION")]
    pub flow_idle_timeout: Duration,

    /// A label set (workload × remote × class …) that no flow counts under any more leaves
    /// /metrics after this long without growth, so series of workloads that are gone do not
    /// accumulate. If it comes back, its counters restart from zero (a counter reset).
    #[arg(long = "series.idle-timeout", env = "EGRESSOR_SERIES_IDLE_TIMEOUT",
          default_value = DEFAULT_SERIES_IDLE_TIMEOUT, value_parser = parse_duration,
          value_name = "DURATION")]
    pub series_idle_timeout: Duration,

    /// Cap on live label sets of the flow counters. Once the cap minus a reserve (1/20 of it,
    /// 16 to 1,024, at most half) is live, new ones fold: first the remote name into
    /// `other`, then also the workload into `other`; the full folds use the reserve (bytes
    /// and cost are never lost; `egressor_series_folded_flows_total` counts the folds,
    /// `egressor_series_over_cap_total` full folds past the cap).
    #[arg(long = "series.max", env = "EGRESSOR_SERIES_MAX", default_value_t = DEFAULT_SERIES_MAX,
          value_name = "N")]
    pub series_max: usize,

    /// Remote names (AS organisations, DNS names) kept as labels per workload: the top K by
    /// bytes in the last window; the rest fold into `other`.
    #[arg(long = "remote-names.top-k", env = "EGRESSOR_REMOTE_NAMES_TOP_K",
          default_value_t = DEFAULT_REMOTE_NAMES_TOP_K, value_name = "K")]
    pub remote_names_top_k: usize,

    /// Window over which remote names are ranked by bytes.
    #[arg(long = "remote-names.window", env = "EGRESSOR_REMOTE_NAMES_WINDOW",
          default_value = DEFAULT_REMOTE_NAMES_WINDOW, value_parser = parse_duration,
          value_name = "DURATION")]
    pub remote_names_window: Duration,

    /// Window of `egressor_distinct_destinations` (distinct external addresses per
    /// workload).
    #[arg(long = "destinations.window", env = "EGRESSOR_DESTINATIONS_WINDOW",
          default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub destinations_window: Duration,

    /// A destination unseen by a workload for this long counts again in
    /// `egressor_new_destinations_total`.
    #[arg(long = "destinations.lookback", env = "EGRESSOR_DESTINATIONS_LOOKBACK",
          default_value = "24h", value_parser = parse_duration, value_name = "DURATION")]
    pub destinations_lookback: Duration,

    /// (workload, destination) pairs remembered for new-destination counting (~100 bytes
    /// each).
    #[arg(long = "destinations.memory", env = "EGRESSOR_DESTINATIONS_MEMORY",
          default_value_t = crate::destinations::DEFAULT_MEMORY, value_name = "N")]
    pub destinations_memory: u64,

    /// DNS responses copied from the kernel at most per second and CPU (for remote names);
    /// 0 turns DNS capture off. What is not copied is counted in
    /// egressor_dns_responses_total{outcome="rate_limited"}.
    #[arg(
        long = "dns.events-per-second",
        env = "EGRESSOR_DNS_EVENTS_PER_SECOND",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub dns_events_per_second: u32,

    /// Names remembered (address → name, each for its record's TTL plus
    /// --dns.grace-period).
    #[arg(
        long = "dns.cache-size",
        env = "EGRESSOR_DNS_CACHE_SIZE",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub dns_cache_size: u64,

    /// Time a name is kept after its record's TTL ran out (connections outlive TTLs).
    #[arg(long = "dns.grace-period", env = "EGRESSOR_DNS_GRACE_PERIOD", default_value = "5m",
          value_parser = parse_duration, value_name = "DURATION")]
    pub dns_grace_period: Duration,

    /// Kubernetes attribution: `auto` turns it on in a cluster (KUBERNETES_SERVICE_HOST set)
    /// or with --kubeconfig.
    #[arg(long = "kubernetes", env = "EGRESSOR_KUBERNETES", value_enum,
          default_value_t = KubernetesMode::Auto)]
    pub kubernetes: KubernetesMode,

    /// kubeconfig file to reach the API server with (default: the in-cluster service
    /// account).
    #[arg(long = "kubeconfig", env = "EGRESSOR_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// This node's name in the cluster [default: $NODE_NAME (the downward API), else the
    /// host name]: its zone labels place the local end.
    #[arg(long = "kubernetes.node-name", env = "NODE_NAME", value_name = "NAME")]
    pub kubernetes_node_name: Option<String>,

    /// Chargeback labels: pod labels (else the namespace's) copied onto every series as
    /// `label_<name>` (`team` → `label_team`, `cost-center` → `label_cost_center`); at most 10.
    #[arg(long = "kubernetes.labels", env = "EGRESSOR_KUBERNETES_LABELS", value_delimiter = ',',
          value_name = "LABEL", num_args = 0..=10)]
    pub kubernetes_labels: Vec<String>,

    /// Network namespace whose conntrack table says which backend served a connection to a
    /// Service (a `/run/netns/NAME` or `/proc/PID/ns/net` file) [default: the agent's own,
    /// the node's with hostNetwork]. Needs CAP_NET_ADMIN there (CAP_SYS_ADMIN to enter it).
    #[arg(
        long = "kubernetes.conntrack-netns",
        env = "EGRESSOR_KUBERNETES_CONNTRACK_NETNS",
        value_name = "FILE"
    )]
    pub kubernetes_conntrack_netns: Option<PathBuf>,

    /// Pod label whose value becomes `workload_version`.
    #[arg(long = "kubernetes.version-label", env = "EGRESSOR_KUBERNETES_VERSION_LABEL",
          default_value = crate::kubernetes::DEFAULT_VERSION_LABEL, value_name = "LABEL")]
    pub kubernetes_version_label: String,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive list).
    #[arg(
        long = "log.level",
        env = "EGRESSOR_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (try 10s, 1m, 500ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let cli = Cli::try_parse_from(["egressor", "agent"]).unwrap();
        let Command::Agent(a) = cli.command else { panic!("agent") };
        assert_eq!(a.listen_address.to_string(), DEFAULT_LISTEN_ADDRESS);
        assert_eq!(a.telemetry_path, "/metrics");
        assert_eq!(a.read_interval, Duration::from_secs(10));
        assert_eq!(a.flow_idle_timeout, Duration::from_secs(120));
        assert_eq!(a.hook, HookMode::Auto);
        assert!(!a.include_loopback);
    }

    #[test]
    fn zero_and_garbage_durations_are_rejected() {
        for bad in ["0s", "ten", ""] {
            let r = Cli::try_parse_from(["egressor", "agent", "--read-interval", bad]);
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn interfaces_repeat_and_split_on_commas() {
        let cli = Cli::try_parse_from([
            "egressor",
            "agent",
            "--interface",
            "eth0",
            "--interface",
            "eth1,wg0",
        ])
        .unwrap();
        let Command::Agent(a) = cli.command else { panic!("agent") };
        assert_eq!(a.interfaces, ["eth0", "eth1", "wg0"]);
    }
}
