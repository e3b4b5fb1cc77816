//! The access log's validated settings: where lines go and what they hold.

/// How the node logs one line per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// As a `tracing` event at info on target `edgeplane::access`, with the node's own logs
    /// (`access_log = true`).
    Tracing,
    /// Lines of their own, written by a background thread (`[node.access_log]`).
    Lines(AccessLines),
}

/// An access log of its own lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLines {
    /// What a line holds.
    pub format: LineFormat,
    /// Where lines go.
    pub output: LogOutput,
    /// Lines waiting for the writer at most; beyond, lines are dropped and counted.
    pub buffer_lines: usize,
}

/// What an access log line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    /// One JSON object per line with these fields, in this order.
    Json(Vec<AccessField>),
    /// Text: the template's literal parts and fields.
    Template(Vec<TemplatePart>),
}

/// A piece of a text template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Written as it is.
    Text(String),
    /// Replaced by the request's value (`-` when it has none).
    Field(AccessField),
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A file, appended to, opened again when it is moved or removed (log rotation).
    File(std::path::PathBuf),
}

macro_rules! access_fields {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// A value an access log line can hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum AccessField {
            $(#[doc = $doc] $variant,)*
        }

        impl AccessField {
            /// Every field, in the order of the documentation.
            pub const ALL: &'static [AccessField] = &[$(AccessField::$variant,)*];

            /// The field's name in `fields` and templates.
            pub fn name(self) -> &'static str {
                match self {
                    $(AccessField::$variant => $name,)*
                }
            }

            /// The field called `name`.
            pub fn from_name(name: &str) -> Option<AccessField> {
                match name {
                    $($name => Some(AccessField::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

access_fields! {
    Time = "time": "When the response head was sent, RFC 3339 in UTC with milliseconds.",
    Client = "client": "The client's IP address.",
    Method = "method": "The request method.",
    Host = "host": "The request's host (`Host` or `:authority`), as sent.",
    Path = "path": "The request path, without the query.",
    Query = "query": "The query, without `?`.",
    Target = "target": "The path with its query, as sent.",
    Protocol = "protocol": "`HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.",
    Status = "status": "The response status.",
    DurationMs = "duration_ms": "Milliseconds from the request head to the response head.",
    Route = "route": "The route's name (`none` when none matched).",
    Cluster = "cluster": "The cluster that served the request.",
    Upstream = "upstream": "The address of the endpoint that answered.",
    Error = "error": "The proxy's error code when it answered itself (`no_endpoint`, ...).",
    GrpcStatus = "grpc_status": "A gRPC call's status code (its `grpc-status`), once its response ends.",
    RequestId = "request_id": "The request id (`x-request-id`, sent or generated).",
    TraceId = "trace_id": "The W3C trace id, passed on or generated.",
    UserAgent = "user_agent": "The `User-Agent` header.",
    Referer = "referer": "The `Referer` header.",
}

impl AccessField {
    /// The fields of a JSON line when `fields` is left out.
    pub const DEFAULT_JSON: &'static [AccessField] = &[
        AccessField::Time,
        AccessField::Client,
        AccessField::Method,
        AccessField::Host,
        AccessField::Path,
        AccessField::Status,
        AccessField::DurationMs,
        AccessField::Route,
        AccessField::Cluster,
        AccessField::Upstream,
        AccessField::Error,
        AccessField::RequestId,
        AccessField::TraceId,
    ];

    /// Whether the field is a number in JSON lines.
    pub fn numeric(self) -> bool {
        matches!(
            self,
            AccessField::Status | AccessField::DurationMs | AccessField::GrpcStatus
        )
    }
}
