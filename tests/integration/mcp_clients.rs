//! The real `tagguard serve` binary driven by the rmcp client over stdio and Streamable HTTP
//! (handshake, tools, errors, progress, cancellation), plus the HTTP front's rules checked
//! with a plain HTTP client.
//!
//! Every test starts its own server (HTTP on `127.0.0.1:0`) and kills it when the test ends,
//! pass or fail. Bodies shared by both transports take a connected [`Session`]; the
//! `over_both_transports!` macro turns each into a `stdio` and an `http` test.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientConfig, ClientRequest,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, RequestId, ServerNotification,
    ServerResult,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestHandle, RunningService, RxJsonRpcMessage,
    TxJsonRpcMessage,
};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{ClientHandler, RoleClient, ServiceError};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// `tagguard serve ARGS` in `home` (its working directory, home and data directory, so that
/// concurrent servers share no store), with no `TAGGUARD_*` setting of the caller's shell, and
/// logging each tool call (`TAGGUARD_LOG=info`).
fn serve_command(args: &[&str], envs: &[(&str, &str)], home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagguard"));
    command.arg("serve").args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TAGGUARD_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("TAGGUARD_DATA_DIR", home.join("data"))
        .env("TAGGUARD_LOG", "info");
    for (key, value) in envs {
        command.env(key, value);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running `tagguard serve`, killed when dropped (so a failing test leaves nothing behind).
struct Server {
    child: Child,
    /// The server's home and data directory, removed after the server is killed.
    _home: TempDir,
    /// Everything the server wrote to stderr so far.
    stderr: watch::Receiver<String>,
    /// `http://127.0.0.1:PORT` for an HTTP server.
    base_url: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine; the runtime reaps the child.
        let _ = self.child.start_kill();
    }
}

impl Server {
    /// Spawns `tagguard serve ARGS` (see [`serve_command`]) and starts collecting its stderr.
    fn spawn(args: &[&str], envs: &[(&str, &str)], stdio: bool) -> Server {
        let home = TempDir::new().expect("a temporary directory");
        let mut command = serve_command(args, envs, home.path());
        if stdio {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        }
        let mut child = command.spawn().expect("the tagguard binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = watch::channel(String::new());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tx.send_modify(|log| {
                    log.push_str(&line);
                    log.push('\n');
                });
            }
        });
        Server {
            child,
            _home: home,
            stderr: rx,
            base_url: None,
        }
    }

    /// A stdio server; its stdin and stdout are left in the child for the client to take.
    fn stdio(args: &[&str]) -> Server {
        let mut all = vec!["--stdio", "--source", "demo"];
        all.extend_from_slice(args);
        Server::spawn(&all, &[], true)
    }

    /// An HTTP server on `127.0.0.1:0`, once it has said where it listens.
    async fn http(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut all = vec!["--http", "127.0.0.1:0", "--source", "demo"];
        all.extend_from_slice(args);
        let mut server = Server::spawn(&all, envs, false);
        let log = server
            .wait_for_stderr("/mcp (health: ", Duration::from_secs(10))
            .await
            .unwrap_or_else(|log| panic!("the HTTP server did not start; stderr:\n{log}"));
        // "tagguard: serving MCP on http://127.0.0.1:PORT/mcp (health: ...)"
        let line = log
            .lines()
            .find(|l| l.contains("serving MCP on http://"))
            .expect("the start line");
        let start = line.find("http://").expect("a URL");
        let end = start + line[start..].find("/mcp").expect("the /mcp path");
        server.base_url = Some(line[start..end].to_string());
        server
    }

    fn base_url(&self) -> &str {
        self.base_url.as_deref().expect("an HTTP server")
    }

    fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url())
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Waits until stderr contains `needle`; `Err` holds stderr so far.
    async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let mut rx = self.stderr.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|log| log.contains(needle))).await {
            Ok(Ok(log)) => Ok(log.clone()),
            _ => Err(self.stderr.borrow().clone()),
        }
    }

    /// Everything on stderr so far.
    fn stderr_text(&self) -> String {
        self.stderr.borrow().clone()
    }

    /// The JSON log events on stderr so far (other lines skipped).
    fn log_events(&self) -> Vec<Value> {
        self.stderr
            .borrow()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }

    /// Waits for a JSON log event with `message` about `tool`.
    async fn wait_for_tool_event(&self, message: &str, tool: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut rx = self.stderr.clone();
        loop {
            if let Some(event) = self
                .log_events()
                .into_iter()
                .find(|e| e["fields"]["message"] == message && e["fields"]["tool"] == tool)
            {
                return event;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let changed = tokio::time::timeout(left, rx.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                panic!(
                    "no '{message}' log for {tool} within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
        }
    }

    /// CPU time (user + system, in clock ticks) the server has used so far.
    #[cfg(target_os = "linux")]
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("/proc/PID/stat of the server");
        // The command name, in parentheses, may hold spaces: count fields after its end.
        let after = &stat[stat.rfind(')').expect("the command name") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat(5) (utime, stime) are 12 and 13 after the name.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }
}

/// Awaits `future`, failing the test if it takes longer than `secs`.
async fn within<F: Future>(secs: u64, what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {secs} s"))
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
async fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The rmcp client
// ---------------------------------------------------------------------------------------------

/// The client's handler: records progress notifications as rmcp delivers them.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    /// The `initialize` parameters to send (rmcp's defaults when `None`).
    config: Option<ClientConfig>,
}

impl Recorder {
    fn asking_for(version: ProtocolVersion) -> Recorder {
        let mut config = ClientConfig::default();
        config.protocol_version = version;
        Recorder {
            config: Some(config),
            ..Recorder::default()
        }
    }

    fn progress_of(&self, token: &ProgressToken) -> Vec<ProgressNotificationParam> {
        lock(&self.progress)
            .iter()
            .filter(|p| &p.progress_token == token)
            .cloned()
            .collect()
    }
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        lock(&self.progress).push(params);
    }

    fn get_info(&self) -> ClientConfig {
        self.config.clone().unwrap_or_default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the client received, in wire order (rmcp hands notifications to the handler on tasks
/// of their own, so the handler alone cannot tell what came before a response).
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Progress(ProgressToken, f64),
    Reply(RequestId),
}

/// A transport that notes progress notifications and replies as they arrive.
struct Tap<T> {
    inner: T,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Tap<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        let seen = match &message {
            Some(RxJsonRpcMessage::<RoleClient>::Notification(n)) => match &n.notification {
                ServerNotification::ProgressNotification(p) => Some(Seen::Progress(
                    p.params.progress_token.clone(),
                    p.params.progress,
                )),
                _ => None,
            },
            Some(RxJsonRpcMessage::<RoleClient>::Response(r)) => Some(Seen::Reply(r.id.clone())),
            Some(RxJsonRpcMessage::<RoleClient>::Error(e)) => e.id.clone().map(Seen::Reply),
            _ => None,
        };
        if let Some(seen) = seen {
            lock(&self.seen).push(seen);
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// Which era of the protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    /// 2025-11-25: `initialize`, then requests in the session.
    Handshake,
    /// 2026-07-28: no handshake; `server/discover`; every request self-contained.
    Stateless,
}

/// A connected rmcp client.
struct Session {
    client: RunningService<RoleClient, Recorder>,
    recorder: Recorder,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Session {
    async fn connect<T>(transport: T, recorder: Recorder) -> Result<Session, String>
    where
        T: Transport<RoleClient> + 'static,
    {
        Session::connect_in(transport, recorder, Era::Handshake).await
    }

    /// Connects in `era`: the 2025 `initialize` handshake, or the stateless 2026-07-28
    /// revision (`server/discover`, the envelope in every request).
    async fn connect_in<T>(transport: T, recorder: Recorder, era: Era) -> Result<Session, String>
    where
        T: Transport<RoleClient> + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tap = Tap {
            inner: transport,
            seen: seen.clone(),
        };
        let lifecycle = match era {
            Era::Handshake => rmcp::service::ClientLifecycleMode::Initialize,
            Era::Stateless => rmcp::service::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        };
        let client = within(
            10,
            "initialize",
            rmcp::service::ClientServiceExt::serve_with_lifecycle(recorder.clone(), tap, lifecycle),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Session {
            client,
            recorder,
            seen,
        })
    }

    /// Over the stdio server's stdin and stdout.
    async fn stdio(server: &mut Server, recorder: Recorder) -> Session {
        let stdin = server.child.stdin.take().expect("stdin is piped");
        let stdout = server.child.stdout.take().expect("stdout is piped");
        Session::connect(
            AsyncRwTransport::new_client(drained(stdout), stdin),
            recorder,
        )
        .await
        .expect("the stdio handshake succeeds")
    }

    /// Over Streamable HTTP, with a bearer token when given.
    async fn http(
        server: &Server,
        recorder: Recorder,
        token: Option<&str>,
    ) -> Result<Session, String> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(server.mcp_url());
        if let Some(token) = token {
            config = config.auth_header(token);
        }
        Session::connect(StreamableHttpClientTransport::from_config(config), recorder).await
    }

    /// `tools/call`, as the result (tool errors included).
    async fn call(&self, tool: &str, arguments: Value) -> Result<CallToolResult, ServiceError> {
        let arguments = arguments
            .as_object()
            .cloned()
            .expect("arguments are an object");
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        within(30, tool, self.client.call_tool(params)).await
    }

    /// A successful call's `structuredContent`.
    async fn structured(&self, tool: &str, arguments: Value) -> Value {
        let result = self
            .call(tool, arguments.clone())
            .await
            .unwrap_or_else(|e| panic!("{tool} {arguments}: {e}"));
        assert_ne!(
            result.is_error,
            Some(true),
            "{tool} {arguments} failed: {}",
            text_of(&result)
        );
        let structured = result
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{tool} returned no structuredContent"));
        // The text content is the same JSON, for clients that read only text.
        let text: Value = serde_json::from_str(&text_of(&result)).expect("text content is JSON");
        assert_eq!(
            text, structured,
            "{tool}: text and structured content differ"
        );
        structured
    }

    /// A failed call's message (`isError: true`).
    async fn tool_error(&self, tool: &str, arguments: Value) -> String {
        let result = self
            .call(tool, arguments.clone())
            .await
            .unwrap_or_else(|e| panic!("{tool} {arguments}: expected a tool error, got {e}"));
        assert_eq!(
            result.is_error,
            Some(true),
            "{tool} {arguments} should fail: {result:?}"
        );
        let text = text_of(&result);
        assert!(
            !text.is_empty(),
            "{tool} {arguments}: an error needs a message"
        );
        text
    }

    /// Starts a `tools/call` whose handle the test keeps (to cancel it or watch its progress).
    async fn start_call(&self, tool: &str, arguments: Value) -> RequestHandle<RoleClient> {
        let arguments = arguments
            .as_object()
            .cloned()
            .expect("arguments are an object");
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        self.client
            .send_request_with_option(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await
            .expect("the request is sent")
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    async fn close(self) {
        let _ = within(10, "closing the client", self.client.cancel()).await;
    }
}

/// The server's stdout as rmcp reads it, read to its end even once rmcp has stopped: a client
/// shuts a stdio server down by closing its stdin, then reads stdout until the server exits
/// (MCP, "Lifecycle", stdio shutdown). A closed rmcp client drops both pipes, which would let
/// a server that is still writing die of a broken pipe instead of shutting down.
fn drained(mut stdout: ChildStdout) -> DuplexStream {
    let (mut forward, read) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 1 << 16];
        let mut forwarding = true;
        loop {
            match stdout.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if forwarding && forward.write_all(&buffer[..n]).await.is_err() {
                        forwarding = false;
                    }
                }
            }
        }
    });
    read
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts a stdio server with `args` and connects to it.
/// Starts a stdio server with `args` and connects to it in `era`.
async fn start_stdio_in(args: &[&str], era: Era) -> (Server, Session) {
    let mut server = Server::stdio(args);
    let stdin = server.child.stdin.take().expect("stdin is piped");
    let stdout = server.child.stdout.take().expect("stdout is piped");
    let session = Session::connect_in(
        AsyncRwTransport::new_client(drained(stdout), stdin),
        Recorder::default(),
        era,
    )
    .await
    .expect("the stdio client connects");
    (server, session)
}

/// Starts an HTTP server with `args` and connects to it in `era`.
async fn start_http_in(args: &[&str], era: Era) -> (Server, Session) {
    let server = Server::http(args, &[]).await;
    let config = StreamableHttpClientTransportConfig::with_uri(server.mcp_url());
    let session = Session::connect_in(
        StreamableHttpClientTransport::from_config(config),
        Recorder::default(),
        era,
    )
    .await
    .expect("the HTTP client connects");
    (server, session)
}

async fn start_stdio(args: &[&str]) -> (Server, Session) {
    let mut server = Server::stdio(args);
    let session = Session::stdio(&mut server, Recorder::default()).await;
    (server, session)
}

/// Starts an HTTP server with `args` and connects to it.
async fn start_http(args: &[&str]) -> (Server, Session) {
    let server = Server::http(args, &[]).await;
    let session = Session::http(&server, Recorder::default(), None)
        .await
        .expect("the HTTP handshake succeeds");
    (server, session)
}

/// One `#[tokio::test]` per transport for a body `async fn(&Server, &Session)`, as
/// `NAME::stdio` and `NAME::http`, each on a server started with `ARGS`.
macro_rules! over_both_transports {
    ($name:ident, $body:ident, $args:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn stdio() {
                let (server, session) = start_stdio($args).await;
                $body(&server, &session).await;
                session.close().await;
            }

            #[tokio::test]
            async fn http() {
                let (server, session) = start_http($args).await;
                $body(&server, &session).await;
                session.close().await;
            }
        }
    };
}

/// Like [`over_both_transports`], and the same again by a client of the stateless 2026-07-28
/// revision: `NAME::stdio`, `NAME::http`, `NAME::stdio_2026`, `NAME::http_2026`.
macro_rules! over_both_eras {
    ($name:ident, $body:ident, $args:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn stdio() {
                let (server, session) = start_stdio_in($args, Era::Handshake).await;
                $body(&server, &session).await;
                session.close().await;
            }

            #[tokio::test]
            async fn http() {
                let (server, session) = start_http_in($args, Era::Handshake).await;
                $body(&server, &session).await;
                session.close().await;
            }

            #[tokio::test]
            async fn stdio_2026() {
                let (server, session) = start_stdio_in($args, Era::Stateless).await;
                assert_eq!(
                    session.client.peer_info().unwrap().protocol_version,
                    ProtocolVersion::V_2026_07_28
                );
                $body(&server, &session).await;
                session.close().await;
            }

            #[tokio::test]
            async fn http_2026() {
                let (server, session) = start_http_in($args, Era::Stateless).await;
                assert_eq!(
                    session.client.peer_info().unwrap().protocol_version,
                    ProtocolVersion::V_2026_07_28
                );
                $body(&server, &session).await;
                session.close().await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Handshake and tools/list
// ---------------------------------------------------------------------------------------------

async fn handshake(_server: &Server, session: &Session) {
    let info = session
        .client
        .peer_info()
        .expect("the server answered initialize");
    let server_info = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server_info.name, "tagguard");
    assert!(!server_info.version.is_empty());
    // rmcp asks for 2026-07-28, which tagguard does not speak: it answers with its latest.
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_11_25);
    assert!(
        info.capabilities.tools.is_some(),
        "tools capability: {info:?}"
    );
    assert!(info.instructions.as_deref().is_some_and(|i| !i.is_empty()));
}
over_both_transports!(handshake_names_tagguard_and_offers_tools, handshake, &[]);

#[tokio::test]
async fn handshake_keeps_an_older_supported_revision_over_stdio() {
    let mut server = Server::stdio(&[]);
    let session = Session::stdio(
        &mut server,
        Recorder::asking_for(ProtocolVersion::V_2025_06_18),
    )
    .await;
    let info = session.client.peer_info().expect("initialized");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_06_18);
    session.close().await;
}

#[tokio::test]
async fn handshake_keeps_an_older_supported_revision_over_http() {
    let server = Server::http(&[], &[]).await;
    let session = Session::http(
        &server,
        Recorder::asking_for(ProtocolVersion::V_2025_06_18),
        None,
    )
    .await
    .expect("connects");
    let info = session.client.peer_info().expect("initialized");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_06_18);
    // Requests after initialize carry MCP-Protocol-Version: 2025-06-18, which must be accepted.
    let policy = session.structured("get_tagging_policy", json!({})).await;
    assert!(policy["policy"]["required_tags"].is_array());
    session.close().await;
}

/// Every tool tagguard serves.
const TOOLS: &[&str] = &[
    "check_tag_compliance",
    "find_untagged_resources",
    "generate_compliance_report",
    "generate_custodian_policy",
    "get_cost_attribution_gap",
    "get_tagging_policy",
    "get_violation_history",
    "import_aws_tag_policy",
    "plan_tag_remediation",
    "suggest_tags",
    "validate_resource_tags",
];

async fn tools_list(_server: &Server, session: &Session) {
    let tools = within(10, "tools/list", session.client.list_all_tools())
        .await
        .expect("tools/list succeeds");
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, BTreeSet::from_iter(TOOLS.iter().copied()));
    assert_eq!(tools.len(), TOOLS.len(), "no tool listed twice");
    for tool in &tools {
        let name = &tool.name;
        assert!(
            tool.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{name} input"
        );
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{name} output schema"));
        assert_eq!(output.get("type"), Some(&json!("object")), "{name} output");
        let annotations = tool
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{name} annotations"));
        assert_eq!(
            annotations.read_only_hint,
            Some(true),
            "{name} is read-only"
        );
        assert_eq!(
            annotations.destructive_hint,
            Some(false),
            "{name} destroys nothing"
        );
    }
}
over_both_eras!(tools_list_offers_every_tool_read_only, tools_list, &[]);

// ---------------------------------------------------------------------------------------------
// The tools
// ---------------------------------------------------------------------------------------------

async fn check_tag_compliance(_server: &Server, session: &Session) {
    // The server serves the default demo estate: its ground truth, from the generator.
    let policy = crate::support::policy();
    let truth = crate::support::estate(2_000, 42, &policy)
        .ground_truth(&tagguard::domain::ScanScope::default());
    let total: u64 = truth.by_type.values().map(|c| c.0).sum();
    let compliant: u64 = truth.by_type.values().map(|c| c.1).sum();
    let report = session.structured("check_tag_compliance", json!({})).await;
    assert_eq!(report["total_resources"], total);
    assert_eq!(report["compliant_resources"], compliant);
    assert_eq!(report["non_compliant_resources"], total - compliant);
    let score = report["compliance_score"].as_f64().expect("a score");
    assert_eq!(score, compliant as f64 / total as f64);
    assert_eq!(report["partial"], false);
    let violations = report["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 50, "the default limit");
    let matching = report["violations_matching"]
        .as_u64()
        .expect("violations_matching");
    assert!(matching > 50, "violations_matching {matching}");
    assert_eq!(
        matching,
        report["error_count"].as_u64().unwrap() + report["warning_count"].as_u64().unwrap(),
        "severity 'all' lists errors and warnings"
    );
    assert!(
        report["truncated"]
            .as_str()
            .is_some_and(|t| t.contains("50")),
        "truncated: {}",
        report["truncated"]
    );

    let s3 = session
        .structured(
            "check_tag_compliance",
            json!({"limit": 5, "resource_types": ["s3:bucket"]}),
        )
        .await;
    let types: Vec<&String> = s3["by_resource_type"].as_object().unwrap().keys().collect();
    assert_eq!(types, ["s3:bucket"]);
    assert_eq!(
        s3["total_resources"],
        s3["by_resource_type"]["s3:bucket"]["total"]
    );
    let listed = s3["violations"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(
        listed.iter().all(|v| v["resource_type"] == "s3:bucket"),
        "{listed:?}"
    );

    let warnings = session
        .structured("check_tag_compliance", json!({"severity": "warnings_only"}))
        .await;
    let listed = warnings["violations"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|v| v["severity"] == "warning"),
        "{listed:?}"
    );
    assert_eq!(warnings["violations_matching"], warnings["warning_count"]);
    // The filter lists; it does not change the totals.
    assert_eq!(warnings["compliant_resources"], compliant);
    assert_eq!(warnings["error_count"], report["error_count"]);
}
over_both_eras!(
    check_tag_compliance_reports_the_demo_estate,
    check_tag_compliance,
    &[]
);

async fn find_untagged_resources(_server: &Server, session: &Session) {
    let all = session
        .structured("find_untagged_resources", json!({}))
        .await;
    let resources = all["resources"].as_array().expect("resources");
    let found = all["total_found"].as_u64().expect("total_found");
    assert!(found > 50, "total_found {found}");
    assert_eq!(resources.len(), 50, "the default limit");
    assert!(all["truncated"].is_string());
    for r in resources {
        let missing = r["missing_tags"].as_array().expect("missing_tags");
        assert!(!missing.is_empty(), "{r}");
    }
    let costs: Vec<Option<f64>> = resources
        .iter()
        .map(|r| r["monthly_cost"].as_f64())
        .collect();
    for pair in costs.windows(2) {
        let in_order = match (pair[0], pair[1]) {
            (Some(a), Some(b)) => a >= b,
            (None, Some(_)) => false,
            _ => true,
        };
        assert!(
            in_order,
            "most expensive first, unknown cost last: {costs:?}"
        );
    }

    let costly = session
        .structured(
            "find_untagged_resources",
            json!({"min_cost_threshold": 100}),
        )
        .await;
    let listed = costly["resources"].as_array().unwrap();
    assert!(!listed.is_empty());
    for r in listed {
        let cost = r["monthly_cost"]
            .as_f64()
            .unwrap_or_else(|| panic!("cost known: {r}"));
        assert!(cost >= 100.0, "{r}");
    }
    let below = costly["excluded_below_threshold"].as_u64().unwrap();
    let unknown = costly["excluded_unknown_cost"].as_u64().unwrap();
    assert!(below > 0);
    assert_eq!(
        costly["total_found"].as_u64().unwrap() + below + unknown,
        found,
        "every resource found without a threshold is kept or counted as excluded"
    );
}
over_both_transports!(
    find_untagged_resources_sorts_by_cost_and_applies_the_threshold,
    find_untagged_resources,
    &[]
);

/// RDS ARNs of which exactly one names a resource without any violation, built from the demo
/// estate's naming patterns (`arn:aws:rds:REGION:ACCOUNT:db:APP-STAGE-db-INDEX` or
/// `…:db:db-INDEX`, indices contiguous per account and region) as seen in the violations: an
/// index missing between two listed ones, with every prefix seen.
fn clean_rds_candidates(rds_violations: &[Value]) -> Vec<String> {
    let mut apps = BTreeSet::new();
    let mut indices: HashMap<(String, String), BTreeSet<u64>> = HashMap::new();
    for v in rds_violations {
        let id = v["resource_id"].as_str().expect("resource_id");
        let (prefix, index) = match id.strip_prefix("db-") {
            Some(index) => ("db-".to_string(), index),
            None => {
                let (prefix, index) = id.rsplit_once("-db-").expect("APP-STAGE-db-INDEX");
                (format!("{prefix}-db-"), index)
            }
        };
        apps.insert(prefix);
        let key = (
            v["region"].as_str().unwrap().to_string(),
            v["account_id"].as_str().unwrap().to_string(),
        );
        indices
            .entry(key)
            .or_default()
            .insert(index.parse().expect("an index"));
    }
    let mut groups: Vec<_> = indices.into_iter().collect();
    groups.sort();
    for ((region, account), seen) in groups {
        let (first, last) = (*seen.first().unwrap(), *seen.last().unwrap());
        if let Some(gap) = (first + 1..last).find(|i| !seen.contains(i)) {
            return apps
                .iter()
                .map(|prefix| format!("arn:aws:rds:{region}:{account}:db:{prefix}{gap}"))
                .collect();
        }
    }
    panic!("no RDS index without violations between two with violations");
}

async fn validate_resource_tags(_server: &Server, session: &Session) {
    let report = session
        .structured("check_tag_compliance", json!({"limit": 1000}))
        .await;
    let violations = report["violations"].as_array().unwrap();
    // A resource with an invalid value: the answer must say what it is and what is allowed.
    let invalid = violations
        .iter()
        .find(|v| {
            v["violation_type"] == "invalid_value"
                && v["severity"] == "error"
                && v["allowed_values"].is_array()
        })
        .expect("an invalid_value error in the demo estate");
    let bad_arn = invalid["resource_arn"].as_str().unwrap().to_string();
    // A resource whose only violations are warnings is compliant.
    let mut severities: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for v in violations {
        severities
            .entry(v["resource_arn"].as_str().unwrap())
            .or_default()
            .insert(v["severity"].as_str().unwrap());
    }
    assert!(report["truncated"].is_null() || report["violations_matching"].as_u64() > Some(1000));
    let warned_arn = violations
        .iter()
        .map(|v| v["resource_arn"].as_str().unwrap())
        .find(|arn| severities[arn] == BTreeSet::from(["warning"]))
        .expect("a resource with warnings only")
        .to_string();
    // Every RDS violation, to find a resource with none.
    let rds = session
        .structured(
            "check_tag_compliance",
            json!({"limit": 1000, "resource_types": ["rds:db"]}),
        )
        .await;
    assert!(rds["truncated"].is_null(), "every RDS violation listed");
    let candidates = clean_rds_candidates(rds["violations"].as_array().unwrap());

    let absent = "arn:aws:ec2:us-east-1:123456789012:instance/i-ffffffffffffffff";
    let mut arns = vec![
        bad_arn.clone(),
        warned_arn.clone(),
        "not-an-arn".to_string(),
        absent.to_string(),
    ];
    arns.extend(candidates.iter().cloned());
    let answer = session
        .structured("validate_resource_tags", json!({"resource_arns": arns}))
        .await;
    let results = answer["results"].as_array().expect("results");
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["resource_arn"].as_str().unwrap())
        .collect();
    assert_eq!(order, arns, "one entry per ARN, in the order given");

    let bad = &results[0];
    assert_eq!(bad["status"], "non_compliant", "{bad}");
    assert!(bad["errors"].as_u64().unwrap() > 0);
    let listed = bad["violations"].as_array().unwrap();
    assert!(
        listed.iter().any(|v| v["tag_name"] == invalid["tag_name"]
            && v["violation_type"] == "invalid_value"
            && v["current_value"] == invalid["current_value"]
            && v["allowed_values"] == invalid["allowed_values"]
            && v["current_value"].is_string()),
        "the invalid value and the allowed ones: {bad}"
    );

    let warned = &results[1];
    assert_eq!(warned["status"], "compliant", "{warned}");
    assert_eq!(warned["errors"], 0);
    assert!(warned["warnings"].as_u64().unwrap() > 0, "{warned}");

    assert_eq!(results[2]["status"], "invalid_arn", "{}", results[2]);
    assert!(results[2]["message"].is_string());
    assert_eq!(results[3]["status"], "not_found", "{}", results[3]);
    assert!(results[3]["message"].is_string());

    let clean: Vec<&Value> = results[4..]
        .iter()
        .filter(|r| r["status"] == "compliant")
        .collect();
    assert_eq!(
        clean.len(),
        1,
        "exactly one candidate exists: {:?}",
        &results[4..]
    );
    assert_eq!(clean[0]["violations"], json!([]), "{}", clean[0]);
    assert!(
        results[4..]
            .iter()
            .all(|r| r["status"] == "compliant" || r["status"] == "not_found"),
        "{:?}",
        &results[4..]
    );
    assert_eq!(answer["compliant"], 2);
    assert_eq!(answer["non_compliant"], 1);
    assert_eq!(answer["invalid"], 1);
    assert_eq!(answer["not_found"], candidates.len() as u64);
}
over_both_transports!(
    validate_resource_tags_answers_each_arn_in_order,
    validate_resource_tags,
    &[]
);

async fn get_tagging_policy(_server: &Server, session: &Session) {
    let answer = session.structured("get_tagging_policy", json!({})).await;
    let names: Vec<&str> = answer["policy"]["required_tags"]
        .as_array()
        .expect("required_tags")
        .iter()
        .map(|t| t["name"].as_str().expect("a name"))
        .collect();
    assert!(
        names.contains(&"CostCenter") && names.contains(&"Owner"),
        "{names:?}"
    );
    assert_eq!(answer["required_by_type"]["CostCenter"], json!(["all"]));
}
over_both_transports!(
    get_tagging_policy_lists_the_required_tags,
    get_tagging_policy,
    &[]
);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

async fn unknown_tool(_server: &Server, session: &Session) {
    match session.call("no_such_tool", json!({})).await {
        Err(ServiceError::McpError(error)) => {
            assert_eq!(error.code.0, -32602, "{error:?}");
            assert!(error.message.contains("no_such_tool"), "{error:?}");
        }
        other => panic!("an unknown tool is a JSON-RPC error, not {other:?}"),
    }
    // The session goes on.
    session.structured("get_tagging_policy", json!({})).await;
}
over_both_transports!(unknown_tool_is_a_json_rpc_error, unknown_tool, &[]);

async fn bad_arguments(_server: &Server, session: &Session) {
    let wrong_type = session
        .tool_error("check_tag_compliance", json!({"limit": "x"}))
        .await;
    assert!(wrong_type.contains("limit"), "{wrong_type}");
    let unknown_field = session
        .tool_error("check_tag_compliance", json!({"bogus": 1}))
        .await;
    assert!(unknown_field.contains("bogus"), "{unknown_field}");
    let nested = session
        .tool_error(
            "check_tag_compliance",
            json!({"filters": {"regions": "us-east-1"}}),
        )
        .await;
    assert!(nested.contains("regions"), "{nested}");
    let zero = session
        .tool_error("check_tag_compliance", json!({"limit": 0}))
        .await;
    assert!(zero.contains("limit"), "{zero}");
    let huge = session
        .tool_error("find_untagged_resources", json!({"limit": 5000}))
        .await;
    assert!(huge.contains("limit") && huge.contains("1000"), "{huge}");
    let negative = session
        .tool_error("find_untagged_resources", json!({"min_cost_threshold": -1}))
        .await;
    assert!(negative.contains("min_cost_threshold"), "{negative}");
    let none = session
        .tool_error("validate_resource_tags", json!({"resource_arns": []}))
        .await;
    assert!(none.contains("resource_arns"), "{none}");
    let missing = session
        .tool_error("validate_resource_tags", json!({}))
        .await;
    assert!(missing.contains("resource_arns"), "{missing}");
}
over_both_transports!(
    bad_arguments_are_tool_errors_naming_the_field,
    bad_arguments,
    &[]
);

// ---------------------------------------------------------------------------------------------
// Progress and cancellation
// ---------------------------------------------------------------------------------------------

async fn progress(_server: &Server, session: &Session) {
    let handle = session.start_call("check_tag_compliance", json!({})).await;
    let (id, token) = (handle.id.clone(), handle.progress_token.clone());
    let response = within(60, "the 200k scan", handle.await_response())
        .await
        .expect("the call succeeds");
    let ServerResult::CallToolResult(result) = response else {
        panic!("not a tools/call result: {response:?}");
    };
    let structured = result.structured_content.expect("structuredContent");
    assert_eq!(structured["total_resources"], 200_000);

    let seen = session.seen();
    let reply = seen
        .iter()
        .position(|s| s == &Seen::Reply(id.clone()))
        .expect("the reply was seen");
    let values: Vec<f64> = seen[..reply]
        .iter()
        .filter_map(|s| match s {
            Seen::Progress(t, p) if t == &token => Some(*p),
            _ => None,
        })
        .collect();
    assert!(!values.is_empty(), "progress before the result: {seen:?}");
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "progress strictly increases: {values:?}"
    );
    assert!(
        !seen[reply..]
            .iter()
            .any(|s| matches!(s, Seen::Progress(t, _) if t == &token)),
        "no progress after the result: {seen:?}"
    );
    // rmcp hands them to the handler too, with the total.
    let delivered = poll(
        Duration::from_secs(2),
        "progress reaching on_progress",
        || {
            let got = session.recorder.progress_of(&token);
            (got.len() == values.len()).then_some(got)
        },
    )
    .await;
    for p in &delivered {
        if let Some(total) = p.total {
            assert!(p.progress <= total, "{p:?}");
        }
    }
    assert!(delivered.iter().any(|p| p.total.is_some()), "{delivered:?}");
}
over_both_transports!(
    progress_notifications_increase_and_precede_the_result,
    progress,
    &["--size", "200000"]
);

async fn cancellation(server: &Server, session: &Session) {
    let handle = session.start_call("check_tag_compliance", json!({})).await;
    let (id, token) = (handle.id.clone(), handle.progress_token.clone());
    // The scan has started once it reports progress.
    poll(
        Duration::from_secs(10),
        "the first progress notification",
        || (!session.recorder.progress_of(&token).is_empty()).then_some(()),
    )
    .await;
    within(
        5,
        "sending the cancellation",
        handle.cancel(Some("test".into())),
    )
    .await
    .expect("notifications/cancelled is sent");

    let event = server
        .wait_for_tool_event(
            "tool call cancelled",
            "check_tag_compliance",
            Duration::from_secs(5),
        )
        .await;
    assert!(event["fields"]["duration_ms"].is_u64(), "{event}");

    // The server answers at once, and the cancelled call gets no result.
    let policy = within(3, "get_tagging_policy after cancelling", async {
        session.structured("get_tagging_policy", json!({})).await
    })
    .await;
    assert!(policy["policy"]["required_tags"].is_array());
    assert!(
        !server
            .log_events()
            .iter()
            .any(|e| e["fields"]["message"] == "tool call succeeded"
                && e["fields"]["tool"] == "check_tag_compliance"),
        "the cancelled scan must not complete: {}",
        server.stderr_text()
    );
    assert!(
        !session.seen().contains(&Seen::Reply(id)),
        "a cancelled request gets no response"
    );

    // The scan stops: the server goes idle instead of scanning five million resources.
    #[cfg(target_os = "linux")]
    {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let before = server.cpu_ticks();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let used = server.cpu_ticks() - before;
            // Under 20% of one core (ticks are 1/100 s); a scan keeps every core busy.
            if used < 10 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server still burns CPU 5 s after the cancellation ({used} ticks in 0.5 s)"
            );
        }
    }
}
over_both_transports!(
    cancelled_call_stops_its_scan_and_the_server_stays_usable,
    cancellation,
    &["--size", "5000000"]
);

// ---------------------------------------------------------------------------------------------
// stdio lifetime
// ---------------------------------------------------------------------------------------------

/// Shuts the server down as an MCP client does: closes its stdin (rmcp's `close`; stdout is
/// still read, see [`drained`]) and waits for it to exit, at most 5 s.
async fn close_stdin_and_expect_exit(mut server: Server, session: Session) {
    session.close().await;
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the stdio server still runs 5 s after its stdin closed; stderr:\n{}",
                server.stderr_text()
            )
        })
        .expect("wait for the server");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        server.stderr_text()
    );
}

#[tokio::test]
async fn stdio_server_exits_when_stdin_closes() {
    let (server, session) = start_stdio(&[]).await;
    session.structured("get_tagging_policy", json!({})).await;
    close_stdin_and_expect_exit(server, session).await;
}

/// Requests still running when stdin closes get 3 s to finish (`DRAIN_ON_EOF`); then they are
/// stopped, so a scan of five million resources (half a minute in a debug build) must not keep
/// the server alive.
#[tokio::test]
async fn stdio_server_exits_when_stdin_closes_during_a_scan() {
    let (server, session) = start_stdio(&["--size", "5000000"]).await;
    let handle = session.start_call("check_tag_compliance", json!({})).await;
    let token = handle.progress_token.clone();
    poll(
        Duration::from_secs(10),
        "the first progress notification",
        || (!session.recorder.progress_of(&token).is_empty()).then_some(()),
    )
    .await;
    // Dropping the handle leaves the request running (it does not cancel it).
    drop(handle);
    close_stdin_and_expect_exit(server, session).await;
}

// ---------------------------------------------------------------------------------------------
// HTTP specifics, with a plain HTTP client
// ---------------------------------------------------------------------------------------------

fn initialize_message() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "plain-http-test", "version": "1"},
        },
    })
}

/// POSTs `body` to `/mcp` with the headers a Streamable HTTP client sends, plus `headers`.
async fn post(server: &Server, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(server.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    within(10, "POST /mcp", request.send())
        .await
        .expect("the server answers")
}

/// Initializes a session over plain HTTP and returns its id.
async fn open_session(server: &Server) -> String {
    let response = post(server, &initialize_message(), &[]).await;
    assert_eq!(response.status(), 200);
    let id = response
        .headers()
        .get("mcp-session-id")
        .expect("an Mcp-Session-Id")
        .to_str()
        .expect("ASCII")
        .to_string();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["result"]["serverInfo"]["name"], "tagguard");
    id
}

#[tokio::test]
async fn health_reports_ok_version_engine_and_what_it_serves() {
    let server = Server::http(&[], &[]).await;
    let response = within(
        10,
        "GET /health",
        reqwest::get(format!("{}/health", server.base_url())),
    )
    .await
    .expect("the server answers");
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.expect("JSON");
    assert_eq!(health["status"], "ok");
    assert!(
        health["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{health}"
    );
    // A demo server reads no cloud: it says so, rather than claiming AWS.
    assert_eq!(health["cloud_providers"], json!([]));
    assert_eq!(health["source"], "demo");
    assert_eq!(health["engine"]["state"], "running");
    assert_eq!(health["engine"]["scans"], 0);
}

#[tokio::test]
async fn notification_after_initialize_gets_202_and_no_body() {
    let server = Server::http(&[], &[]).await;
    let session = open_session(&server).await;
    let response = post(
        &server,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.bytes().await.expect("a body").len(), 0);
}

#[tokio::test]
async fn unknown_or_deleted_session_is_404() {
    let server = Server::http(&[], &[]).await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let unknown = post(
        &server,
        &ping,
        &[("Mcp-Session-Id", "0123456789abcdef0123456789abcdef")],
    )
    .await;
    assert_eq!(unknown.status(), 404);

    let session = open_session(&server).await;
    let known = post(&server, &ping, &[("Mcp-Session-Id", &session)]).await;
    assert_eq!(known.status(), 200);
    let deleted = within(
        10,
        "DELETE /mcp",
        reqwest::Client::new()
            .delete(server.mcp_url())
            .header("Mcp-Session-Id", &session)
            .send(),
    )
    .await
    .expect("the server answers");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let after = post(&server, &ping, &[("Mcp-Session-Id", &session)]).await;
    assert_eq!(after.status(), 404);
}

#[tokio::test]
async fn foreign_origin_is_403() {
    let server = Server::http(&[], &[]).await;
    let evil = post(
        &server,
        &initialize_message(),
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(evil.status(), 403);
    assert!(
        evil.headers().get("mcp-session-id").is_none(),
        "no session for a foreign origin"
    );
    let local = post(
        &server,
        &initialize_message(),
        &[("Origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(local.status(), 200, "a loopback origin is allowed");
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let server = Server::http(&[], &[("TAGGUARD_AUTH_TOKEN", "secret")]).await;
    let without = post(&server, &initialize_message(), &[]).await;
    assert_eq!(without.status(), 401);
    assert!(without.headers().get("www-authenticate").is_some());
    let wrong = post(
        &server,
        &initialize_message(),
        &[("Authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let right = post(
        &server,
        &initialize_message(),
        &[("Authorization", "Bearer secret")],
    )
    .await;
    assert_eq!(right.status(), 200);

    // rmcp's HTTP client: without the token it cannot connect; with it, it works.
    let refused = Session::http(&server, Recorder::default(), None).await;
    assert!(refused.is_err(), "connected without the token");
    let session = Session::http(&server, Recorder::default(), Some("secret"))
        .await
        .expect("connects with the token");
    let tools = within(10, "tools/list", session.client.list_all_tools())
        .await
        .expect("tools/list with the token");
    assert_eq!(tools.len(), TOOLS.len());
    session.structured("get_tagging_policy", json!({})).await;
    session.close().await;
}

#[tokio::test]
async fn public_bind_without_token_exits_2() {
    let home = TempDir::new().expect("a temporary directory");
    let mut command = serve_command(
        &["--http", "0.0.0.0:0", "--source", "demo"],
        &[],
        home.path(),
    );
    command.stdout(Stdio::piped());
    let output = within(
        10,
        "tagguard serve --http 0.0.0.0:0",
        command.spawn().expect("starts").wait_with_output(),
    )
    .await
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("TAGGUARD_AUTH_TOKEN"), "stderr:\n{stderr}");
}

/// Started with `--allow-remediation`, the server offers `apply_tag_remediation` too, annotated
/// as destructive; it takes a kept plan's id only, and an unknown id is an error. The demo
/// estate cannot be written: each resource of the plan comes back failed, with the reason,
/// and nothing is reported applied.
async fn remediation_is_served_only_when_allowed(_server: &Server, session: &Session) {
    let tools = within(10, "tools/list", session.client.list_all_tools())
        .await
        .expect("tools/list succeeds");
    let apply = tools
        .iter()
        .find(|t| t.name == "apply_tag_remediation")
        .expect("apply_tag_remediation is served with --allow-remediation");
    let annotations = apply.annotations.as_ref().expect("annotated");
    assert_eq!(annotations.read_only_hint, Some(false));
    assert_eq!(annotations.destructive_hint, Some(true));
    assert_eq!(annotations.idempotent_hint, Some(false));
    let schema = serde_json::to_value(apply.input_schema.as_ref()).unwrap();
    assert_eq!(schema["required"], json!(["plan_id"]), "{schema}");

    let unknown = session
        .tool_error("apply_tag_remediation", json!({"plan_id": "plan-0-0"}))
        .await;
    assert!(unknown.contains("plan-0-0"), "{unknown}");
    let free_form = session
        .tool_error(
            "apply_tag_remediation",
            json!({"plan_id": "x", "set": {"CostCenter": "Finance"}}),
        )
        .await;
    assert!(!free_form.is_empty());

    let plan = session
        .structured(
            "plan_tag_remediation",
            json!({"resource_types": ["ec2:instance"], "min_confidence": 0.8, "limit": 3}),
        )
        .await;
    let planned = plan["resources"].as_array().unwrap().len();
    assert!(planned >= 1, "{plan}");
    let record = session
        .structured("apply_tag_remediation", json!({"plan_id": plan["plan_id"]}))
        .await;
    assert_eq!(record["plan_id"], plan["plan_id"]);
    assert_eq!(record["applied"], 0, "{record}");
    assert_eq!(
        record["results"].as_array().unwrap().len(),
        planned,
        "{record}"
    );
    for result in record["results"].as_array().unwrap() {
        assert_eq!(result["status"], "failed", "{record}");
        assert!(
            result["message"]
                .as_str()
                .unwrap()
                .contains("cannot be changed"),
            "{record}"
        );
    }
}

over_both_transports!(
    apply_tag_remediation_with_allow_remediation,
    remediation_is_served_only_when_allowed,
    &["--allow-remediation"]
);

// ---------------------------------------------------------------------------------------------
// Resources: reports and scans behind links
// ---------------------------------------------------------------------------------------------

async fn read(session: &Session, uri: &str) -> Result<Value, ServiceError> {
    let params: rmcp::model::ReadResourceRequestParams =
        serde_json::from_value(json!({ "uri": uri })).expect("read params");
    let result = within(30, "resources/read", session.client.read_resource(params)).await?;
    Ok(serde_json::to_value(result).expect("a read result serialises"))
}

async fn report_and_scan_resources(_server: &Server, session: &Session) {
    let info = session.client.peer_info().expect("initialized");
    assert!(
        info.capabilities.resources.is_some(),
        "resources capability"
    );
    let result = session
        .call(
            "generate_compliance_report",
            json!({ "format": "html", "resource_types": ["ec2:instance", "s3:bucket"] }),
        )
        .await
        .expect("the report tool answers");
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let summary = result.structured_content.clone().expect("structured");
    let uri = summary["report_uri"]
        .as_str()
        .expect("a report uri")
        .to_string();
    assert!(uri.starts_with("tagguard://reports/"), "{uri}");
    // The result links the report instead of carrying it.
    let blocks = serde_json::to_value(&result.content).unwrap();
    let link = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "resource_link")
        .unwrap_or_else(|| panic!("no resource_link in {blocks}"));
    assert_eq!(link["uri"], uri.as_str());
    assert_eq!(link["mimeType"], "text/html");
    let bytes = summary["bytes"].as_u64().unwrap() as usize;
    assert!(
        blocks.to_string().len() < bytes,
        "the result is smaller than the report"
    );
    assert!(
        !summary["top_recommendations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let read_back = read(session, &uri).await.expect("the report reads back");
    let contents = &read_back["contents"][0];
    assert_eq!(contents["mimeType"], "text/html");
    let html = contents["text"].as_str().unwrap();
    assert_eq!(html.len(), bytes);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("chart-score"));

    // The scan behind it, and every one of its violations, page by page.
    let scan_id = summary["scan"]["scan_id"].as_str().unwrap();
    let scan = read(session, &format!("tagguard://scans/{scan_id}"))
        .await
        .unwrap();
    let scan: Value = serde_json::from_str(scan["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(scan["total_resources"], summary["total_resources"]);
    let total = scan["violations_count"].as_u64().unwrap();
    assert_eq!(
        total,
        summary["error_count"].as_u64().unwrap() + summary["warning_count"].as_u64().unwrap()
    );
    let mut next = Some(summary["violations_uri"].as_str().unwrap().to_string());
    let (mut seen, mut pages) = (0, 0);
    while let Some(page_uri) = next {
        let page = read(session, &page_uri).await.unwrap();
        let page: Value =
            serde_json::from_str(page["contents"][0]["text"].as_str().unwrap()).unwrap();
        let items = page["violations"].as_array().unwrap();
        assert!(items.len() <= 500);
        assert!(items.iter().all(|v| {
            ["ec2:instance", "s3:bucket"].contains(&v["resource_type"].as_str().unwrap())
        }));
        seen += items.len() as u64;
        pages += 1;
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen, total);
    assert!(pages >= 2, "{total} violations in {pages} page(s)");

    // Listing names what can be read; the templates say how to name the rest.
    let listed = within(10, "resources/list", session.client.list_all_resources())
        .await
        .unwrap();
    let uris: Vec<String> = listed.iter().map(|r| r.uri.clone()).collect();
    assert!(uris.contains(&uri), "{uris:?}");
    assert!(uris.contains(&"tagguard://policy".to_string()));
    let templates = within(
        10,
        "resources/templates/list",
        session.client.list_all_resource_templates(),
    )
    .await
    .unwrap();
    let templates = serde_json::to_value(templates).unwrap();
    assert!(
        templates
            .to_string()
            .contains("tagguard://scans/{scan_id}/violations")
    );

    // A list cut at its limit links to all of it.
    let cut = session
        .call("check_tag_compliance", json!({ "limit": 3 }))
        .await
        .unwrap();
    let blocks = serde_json::to_value(&cut.content).unwrap();
    let link = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "resource_link")
        .unwrap_or_else(|| panic!("no link in {blocks}"));
    let structured = cut.structured_content.clone().unwrap();
    assert_eq!(link["uri"], structured["violations_uri"]);
    let first = read(session, link["uri"].as_str().unwrap()).await.unwrap();
    let first: Value =
        serde_json::from_str(first["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(first["violations_total"], structured["violations_matching"]);
    assert_eq!(
        first["violations"][0]["resource_arn"],
        structured["violations"][0]["resource_arn"]
    );

    // An unknown resource is a JSON-RPC error, and the server goes on.
    let missing = read(session, "tagguard://reports/report-nope").await;
    let message = format!("{:?}", missing.expect_err("no such report"));
    assert!(
        message.contains("-32002") || message.contains("no report"),
        "{message}"
    );
    let policy = read(session, "tagguard://policy").await.unwrap();
    assert!(
        policy["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("CostCenter")
    );
}
over_both_eras!(
    reports_and_scans_are_resources_behind_links,
    report_and_scan_resources,
    &[]
);

// ---------------------------------------------------------------------------------------------
// Prompts and completion
// ---------------------------------------------------------------------------------------------

async fn complete(
    session: &Session,
    reference: Value,
    argument: &str,
    value: &str,
) -> Result<Value, ServiceError> {
    let params: rmcp::model::CompleteRequestParams = serde_json::from_value(json!({
        "ref": reference,
        "argument": { "name": argument, "value": value },
    }))
    .expect("complete params");
    let result = within(10, "completion/complete", session.client.complete(params)).await?;
    Ok(serde_json::to_value(result).expect("a completion serialises"))
}

async fn prompts_and_completion(_server: &Server, session: &Session) {
    let info = session.client.peer_info().expect("initialized");
    assert!(info.capabilities.prompts.is_some(), "prompts capability");
    assert!(
        info.capabilities.completions.is_some(),
        "completions capability"
    );
    let prompts = within(10, "prompts/list", session.client.list_all_prompts())
        .await
        .unwrap();
    let names: BTreeSet<String> = prompts.iter().map(|p| p.name.clone()).collect();
    assert_eq!(
        names,
        ["account_audit", "cost_gap_review", "fix_plan"]
            .map(String::from)
            .into()
    );

    // A prompt with its arguments: the messages name the tools and the values given.
    let params: rmcp::model::GetPromptRequestParams = serde_json::from_value(json!({
        "name": "account_audit",
        "arguments": { "account_id": "123456789012", "region": "us-east-1" },
    }))
    .unwrap();
    let got = within(10, "prompts/get", session.client.get_prompt(params))
        .await
        .unwrap();
    let text = serde_json::to_value(&got.messages).unwrap().to_string();
    for needle in [
        "123456789012",
        "us-east-1",
        "check_tag_compliance",
        "generate_compliance_report",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // A required argument missing, or a bad value, is an error naming it.
    for (args, needle) in [
        (json!({}), "account_id"),
        (json!({ "account_id": "12" }), "12 digits"),
    ] {
        let params: rmcp::model::GetPromptRequestParams =
            serde_json::from_value(json!({ "name": "account_audit", "arguments": args })).unwrap();
        let error = within(10, "prompts/get", session.client.get_prompt(params))
            .await
            .expect_err("refused");
        assert!(format!("{error:?}").contains(needle), "{error:?}");
    }

    // Completion: the policy's tags, the known types, and the accounts of the scans held.
    let tags = complete(
        session,
        json!({"type": "ref/prompt", "name": "fix_plan"}),
        "tag",
        "cost",
    )
    .await
    .unwrap();
    assert_eq!(tags["completion"]["values"], json!(["CostCenter"]));
    let types = complete(
        session,
        json!({"type": "ref/prompt", "name": "fix_plan"}),
        "resource_type",
        "ec2:",
    )
    .await
    .unwrap();
    let types = types["completion"]["values"].as_array().unwrap().clone();
    assert!(types.contains(&json!("ec2:instance")), "{types:?}");
    assert!(
        types
            .iter()
            .all(|t| t.as_str().unwrap().starts_with("ec2:"))
    );
    // Accounts become known once a scan is held.
    session
        .structured("check_tag_compliance", json!({ "limit": 1 }))
        .await;
    let policy = crate::support::policy();
    let accounts: BTreeSet<String> = crate::support::estate(2_000, 42, &policy)
        .resources(&tagguard::domain::ScanScope::default())
        .iter()
        .map(|r| r.account_id.to_string())
        .collect();
    let got = complete(
        session,
        json!({"type": "ref/prompt", "name": "account_audit"}),
        "account_id",
        "",
    )
    .await
    .unwrap();
    let got: BTreeSet<String> = got["completion"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, accounts);
    // And resource template variables.
    let ids = complete(
        session,
        json!({"type": "ref/resource", "uri": "tagguard://scans/{scan_id}"}),
        "scan_id",
        "scan-",
    )
    .await
    .unwrap();
    assert!(!ids["completion"]["values"].as_array().unwrap().is_empty());
    let error = complete(
        session,
        json!({"type": "ref/prompt", "name": "nope"}),
        "tag",
        "",
    )
    .await;
    assert!(error.is_err());
}
over_both_eras!(
    prompts_have_arguments_and_completions,
    prompts_and_completion,
    &[]
);

// ---------------------------------------------------------------------------------------------
// The 2026-07-28 revision on the wire: envelope, headers, results, and the handshake era beside it
// ---------------------------------------------------------------------------------------------

fn envelope(version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "wire-test", "version": "1" },
    })
}

fn request(id: u64, method: &str, mut params: Value, version: &str) -> Value {
    params["_meta"] = envelope(version);
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// POSTs `body` with `headers`; the status and the JSON answer (null for an empty body).
async fn post_2026(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut builder = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = builder.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

#[tokio::test]
async fn the_2026_revision_over_http_checks_its_envelope_and_headers_beside_the_handshake() {
    let server = Server::http(&[], &[]).await;
    let url = server.mcp_url();
    let v = "2026-07-28";
    let modern = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![("mcp-protocol-version", v), ("mcp-method", method)];
        if let Some(name) = name {
            h.push(("mcp-name", name));
        }
        h
    };

    // Discovery, without a session: capabilities, identity and a cache hint.
    let (status, answer) = post_2026(
        &url,
        &request(1, "server/discover", json!({}), v),
        &modern("server/discover", None),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["supportedVersions"], json!([v]));
    for capability in ["tools", "resources", "prompts", "completions"] {
        assert!(
            result["capabilities"][capability].is_object(),
            "{capability}: {result}"
        );
    }
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "tagguard"
    );
    assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string());

    // A tool call needs no initialize; its result is a 2026 result.
    let call = request(
        2,
        "tools/call",
        json!({ "name": "get_tagging_policy", "arguments": {} }),
        v,
    );
    let (status, answer) = post_2026(
        &url,
        &call,
        &modern("tools/call", Some("get_tagging_policy")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete");
    assert!(answer["result"]["structuredContent"]["policy"].is_object());
    let (_, listed) = post_2026(
        &url,
        &request(3, "tools/list", json!({}), v),
        &modern("tools/list", None),
    )
    .await;
    assert!(
        listed["result"]["ttlMs"].as_u64().unwrap() > 0,
        "tools/list is cacheable"
    );
    assert_eq!(listed["result"]["cacheScope"], "public");

    // Headers that disagree with the body: 400, -32020.
    for headers in [
        modern("tools/call", Some("check_tag_compliance")),
        modern("tools/list", Some("get_tagging_policy")),
        vec![("mcp-protocol-version", v)],
        vec![
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_tagging_policy"),
        ],
    ] {
        let (status, answer) = post_2026(&url, &call, &headers).await;
        assert_eq!(
            (status, answer["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{headers:?}: {answer}"
        );
    }
    // A name header sent base64-encoded is read as the name.
    let encoded = [
        ("mcp-protocol-version", v),
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?Z2V0X3RhZ2dpbmdfcG9saWN5?="),
    ];
    let (status, _) = post_2026(&url, &call, &encoded).await;
    assert_eq!(status, 200);

    // An envelope missing a key is -32602; a version not served, -32022 naming those served.
    let mut half = call.clone();
    half["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let (status, answer) = post_2026(
        &url,
        &half,
        &modern("tools/call", Some("get_tagging_policy")),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_i64()),
        (400, Some(-32602)),
        "{answer}"
    );
    let future = request(4, "tools/list", json!({}), "2099-01-01");
    let (status, answer) = post_2026(
        &url,
        &future,
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{answer}"
    );
    let supported = answer["error"]["data"]["supported"].as_array().unwrap();
    assert!(supported.contains(&json!(v)) && supported.contains(&json!("2025-11-25")));
    // ping is not part of the revision: 404, -32601.
    let (status, answer) = post_2026(
        &url,
        &request(5, "ping", json!({}), v),
        &modern("ping", None),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_i64()),
        (404, Some(-32601))
    );
    // No session is made or needed; DELETE has nothing to end.
    let response = reqwest::Client::new()
        .delete(&url)
        .header("mcp-protocol-version", v)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);

    // The handshake era on the same endpoint: discover is unknown there (so probing clients
    // fall back), initialize opens a session, and its results carry no 2026 fields.
    let bare = json!({ "jsonrpc": "2.0", "id": 6, "method": "server/discover" });
    let (status, answer) = post_2026(&url, &bare, &[]).await;
    assert!(
        status >= 400 && answer["error"]["code"].is_i64(),
        "{status} {answer}"
    );
    let init = json!({ "jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
    let legacy = json!({ "jsonrpc": "2.0", "id": 8, "method": "tools/list" });
    let (status, answer) = post_2026(
        &url,
        &legacy,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer["result"].get("resultType").is_none(),
        "a 2025 result has no resultType"
    );
    assert!(answer["result"].get("ttlMs").is_none());
}

#[tokio::test]
async fn the_2026_revision_over_stdio_is_served_per_request_beside_the_handshake() {
    let mut server = Server::stdio(&[]);
    let mut stdin = server.child.stdin.take().unwrap();
    let mut stdout = BufReader::new(server.child.stdout.take().unwrap()).lines();
    let v = "2026-07-28";
    let initialize = json!({ "jsonrpc": "2.0", "id": 6, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    // Requests are answered concurrently: each batch is answered before the next is sent.
    let batches = [
        vec![
            request(1, "server/discover", json!({}), v),
            request(2, "tools/call", json!({ "name": "get_tagging_policy" }), v),
            request(3, "ping", json!({}), v),
            request(4, "tools/list", json!({}), "2099-01-01"),
            // The handshake era's rules hold beside the other era.
            json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/list" }),
        ],
        vec![initialize],
        vec![json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/list" })],
    ];
    let mut answers: HashMap<u64, Value> = HashMap::new();
    for batch in &batches {
        for line in batch {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap();
        }
        stdin.flush().await.unwrap();
        let wanted = answers.len() + batch.len();
        while answers.len() < wanted {
            let line = within(30, "a response", stdout.next_line())
                .await
                .unwrap()
                .expect("a line");
            let value: Value = serde_json::from_str(&line).unwrap();
            answers.insert(value["id"].as_u64().unwrap(), value);
        }
    }
    assert_eq!(answers[&1]["result"]["supportedVersions"], json!([v]));
    assert_eq!(answers[&2]["result"]["resultType"], "complete");
    assert!(answers[&2]["result"]["_meta"]["correlation_id"].is_string());
    assert_eq!(answers[&3]["error"]["code"], -32601);
    assert_eq!(answers[&4]["error"]["code"], -32022);
    assert_eq!(
        answers[&5]["error"]["code"], -32600,
        "before initialize, in the handshake era"
    );
    assert_eq!(answers[&6]["result"]["protocolVersion"], "2025-11-25");
    assert!(answers[&7]["result"]["tools"].is_array());
    assert!(answers[&7]["result"].get("resultType").is_none());
}

async fn import_aws_tag_policy(_server: &Server, session: &Session) {
    let chain = json!([
        {"tags": {"costcenter": {"tag_key": {"@@assign": "CostCenter"},
                                 "tag_value": {"@@assign": ["100", "2*"], "@@operators_allowed_for_child_policies": ["@@append"]},
                                 "enforced_for": {"@@assign": ["ec2:instance"]},
                                 "report_required_tag_for": {"@@assign": ["ec2:instance"]}}}},
        {"tags": {"costcenter": {"tag_value": {"@@assign": ["999"]}}}},
        {"tags": {"costcenter": {"tag_value": {"@@append": ["300"]}}}}
    ]);
    let answer = session
        .structured("import_aws_tag_policy", json!({ "policy": chain }))
        .await;
    let rule = &answer["policy"]["required_tags"][0];
    assert_eq!(rule["name"], "CostCenter");
    assert_eq!(rule["allowed_values"], json!(["100", "2*", "300"]));
    assert_eq!(rule["wildcard_values"], true);
    assert_eq!(
        answer["effective_policy"]["tags"]["costcenter"]["tag_value"],
        json!(["100", "2*", "300"])
    );
    let notes = answer["notes"].to_string();
    assert!(
        notes.contains("enforced_for") && notes.contains("@@assign"),
        "{notes}"
    );
    let refused = session
        .call(
            "import_aws_tag_policy",
            json!({ "policy": {"Version": "2012-10-17"} }),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("not a tag policy"),
        "{}",
        text_of(&refused)
    );
}
over_both_transports!(aws_tag_policies_import_over_mcp, import_aws_tag_policy, &[]);

async fn generate_custodian_policy(_server: &Server, session: &Session) {
    let answer = session
        .call(
            "generate_custodian_policy",
            json!({ "resource_types": ["ec2:instance", "s3:bucket"], "name_prefix": "org" }),
        )
        .await
        .unwrap();
    assert_ne!(answer.is_error, Some(true), "{}", text_of(&answer));
    let structured = answer
        .structured_content
        .clone()
        .expect("structured content");
    let names: Vec<&str> = structured["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["org-ec2", "org-s3"]);
    let yaml = structured["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("resource: \"aws.ec2\"") && yaml.contains("resource: \"aws.s3\""),
        "{yaml}"
    );
    // The YAML is also a block of its own, ready to save.
    let blocks = serde_json::to_value(&answer.content).unwrap();
    assert!(
        blocks.as_array().unwrap().iter().any(|b| b["text"] == yaml),
        "{blocks}"
    );
    let refused = session
        .call(
            "generate_custodian_policy",
            json!({ "name_prefix": "bad prefix" }),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("Cloud Custodian policy name"),
        "{}",
        text_of(&refused)
    );
}
over_both_transports!(custodian_export_over_mcp, generate_custodian_policy, &[]);
