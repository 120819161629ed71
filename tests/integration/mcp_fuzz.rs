//! The MCP front under hostile input: 10,000 messages over stdio and over HTTP (random bytes,
//! invalid UTF-8, deep nesting, truncated requests, every tool's arguments with wrong types,
//! huge strings, JSON that is not JSON-RPC). The server must answer each request that has an
//! id, answer each undecodable message with a parse error (-32700, id null), never crash or
//! hang, and still answer a valid request afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Messages per transport.
const MESSAGES: usize = 10_000;

/// A small deterministic generator (xorshift64*): the same messages on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One hostile message, and what the server owes it.
struct Hostile {
    bytes: Vec<u8>,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not decodable as JSON: a parse error with id null.
    ParseError,
    /// A request with this id: exactly one response with it.
    Answer(u64),
    /// JSON, but no request with an id (a notification, a bare value): anything but a crash.
    Anything,
}

/// The wrong values tried for every argument.
fn wrong_values(huge: &str) -> Vec<Value> {
    vec![
        json!(42),
        json!(-1),
        json!(1e308),
        json!("not what it wants"),
        json!(true),
        json!(null),
        json!([]),
        json!([1, {"a": []}]),
        json!({}),
        json!({"nested": {"deeper": [null]}}),
        json!(huge),
        json!(["ec2:instance", 7, null]),
    ]
}

/// The tools and their argument names, from the server's own `tools/list` answer.
type ToolArguments = BTreeMap<String, Vec<String>>;

fn tool_arguments(list: &Value) -> ToolArguments {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| {
            let names = tool["inputSchema"]["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            (tool["name"].as_str().unwrap().to_string(), names)
        })
        .collect()
}

/// The 10,000 messages, ids from `first_id`.
fn hostile_messages(tools: &ToolArguments, first_id: u64, max_bytes: usize) -> Vec<Hostile> {
    let mut noise = Noise(0x5EED_F00D_CAFE_BEEF);
    let huge = "x".repeat(100_000);
    let wrong = wrong_values(&huge);
    // Every (tool, argument, wrong value), cycled through.
    let mut combos = Vec::new();
    for (tool, names) in tools {
        for name in names.iter().map(Some).chain([None]) {
            for value in &wrong {
                combos.push((tool.clone(), name.cloned(), value.clone()));
            }
        }
    }
    let mut id = first_id;
    let mut next_id = || {
        id += 1;
        id
    };
    let mut out = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let message = match i % 10 {
            // Random bytes, starting with a byte that is never UTF-8 on its own.
            0 => {
                let len = 1 + noise.below(300);
                let mut bytes = vec![0x80 + (noise.next() % 0x80) as u8];
                bytes.extend(
                    (1..len)
                        .map(|_| (noise.next() % 256) as u8)
                        .filter(|b| *b != b'\n'),
                );
                Hostile {
                    bytes,
                    expect: Expect::ParseError,
                }
            }
            // A valid request cut short.
            1 => {
                let text = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "check_tag_compliance", "arguments": {"resource_types": ["ec2:instance"]}}})
                .to_string();
                let cut = 1 + noise.below(text.len() - 1);
                Hostile {
                    bytes: text.as_bytes()[..cut].to_vec(),
                    expect: Expect::ParseError,
                }
            }
            // Nesting deeper than any parser should follow.
            2 => {
                let depth = 200 + noise.below(20_000);
                let mut text = String::from(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_tagging_policy","arguments":"#,
                );
                text.push_str(&"[".repeat(depth));
                text.push_str(&"]".repeat(depth));
                text.push_str("}}");
                Hostile {
                    bytes: text.into_bytes(),
                    expect: Expect::ParseError,
                }
            }
            // Invalid UTF-8 inside an otherwise valid request.
            3 => {
                let mut bytes =
                    br#"{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":""#.to_vec();
                bytes
                    .extend_from_slice(&[0xFF, 0xC3, 0x28, 0xED, 0xA0, 0x80][..1 + noise.below(6)]);
                bytes.extend_from_slice(br#""}}"#);
                Hostile {
                    bytes,
                    expect: Expect::ParseError,
                }
            }
            // Every tool's arguments with the wrong types (twice as often: there are many).
            4 | 5 => {
                let (tool, name, value) = &combos[noise.below(combos.len())];
                let arguments = match name {
                    Some(name) => json!({ name: value }),
                    None => value.clone(),
                };
                let id = next_id();
                let text = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments}})
                .to_string();
                Hostile {
                    bytes: text.into_bytes(),
                    expect: Expect::Answer(id),
                }
            }
            // Huge strings: a method name of 200 kB, and now and then a line past the limit.
            6 => {
                if i % 1000 == 6 {
                    let text = format!(
                        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
                        "y".repeat(max_bytes + 10)
                    );
                    Hostile {
                        bytes: text.into_bytes(),
                        expect: Expect::ParseError,
                    }
                } else {
                    let id = next_id();
                    let text = json!({"jsonrpc": "2.0", "id": id, "method": "z".repeat(200_000)})
                        .to_string();
                    Hostile {
                        bytes: text.into_bytes(),
                        expect: Expect::Answer(id),
                    }
                }
            }
            // JSON that is not a JSON-RPC request.
            7 => {
                let values = [
                    json!(42),
                    json!("text"),
                    json!([]),
                    json!([1, 2]),
                    json!(null),
                    json!({"id": 3}),
                    json!({"jsonrpc": "1.0", "id": 4, "method": "ping"}),
                    json!({"jsonrpc": "2.0", "method": 17, "id": 5}),
                    json!([{"jsonrpc": "2.0", "id": 6, "method": "ping"}]),
                    json!({"jsonrpc": "2.0", "id": {"an": "object"}, "method": "ping"}),
                ];
                let value = &values[noise.below(values.len())];
                Hostile {
                    bytes: value.to_string().into_bytes(),
                    expect: Expect::Anything,
                }
            }
            // Unknown methods, and wrong parameters of real ones.
            8 => {
                let id = next_id();
                let (method, params) = match noise.below(4) {
                    0 => ("tools/destroy", json!({})),
                    1 => ("tools/call", json!("not an object")),
                    2 => ("tools/call", json!({"name": 12})),
                    _ => ("resources/read", json!({"uri": -1})),
                };
                let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
                    .to_string();
                Hostile {
                    bytes: text.into_bytes(),
                    expect: Expect::Answer(id),
                }
            }
            // Notifications with garbage: nothing to answer.
            _ => {
                let text = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": [noise.next()], "reason": 7}})
                .to_string();
                Hostile {
                    bytes: text.into_bytes(),
                    expect: Expect::Anything,
                }
            }
        };
        out.push(message);
    }
    out
}

/// A config for the fuzzed servers: no session budget or loop detection, which would answer
/// the same errors for every call after the first hundreds and test less.
fn unguarded_config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = tagguard::config::DEFAULT_CONFIG_TOML
        .replace("max_calls_per_session = 500", "max_calls_per_session = 0")
        .replace("max_identical_calls = 3", "max_identical_calls = 0");
    let path = dir.join("tagguard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(dir: &std::path::Path, transport: &[&str]) -> Command {
    let config = unguarded_config(dir);
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagguard"));
    command
        .arg("serve")
        .args(transport)
        .args(["--source", "demo", "--size", "200", "--config"])
        .arg(config)
        .env("TAGGUARD_DATA_DIR", dir.join("data"))
        .env_remove("TAGGUARD_POLICY")
        .env_remove("TAGGUARD_CONFIG")
        .env_remove("TAGGUARD_AUTH_TOKEN")
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1"}}})
}

fn valid_call(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "check_tag_compliance", "arguments": {"resource_types": ["ec2:instance"], "limit": 1}}})
}

/// What the responses owe the messages: one answer per id, one parse error per undecodable
/// message.
fn check_answers(messages: &[Hostile], responses: &[Value]) {
    let mut by_id: BTreeMap<u64, usize> = BTreeMap::new();
    let mut parse_errors = 0;
    for response in responses {
        match response["id"].as_u64() {
            Some(id) => *by_id.entry(id).or_default() += 1,
            None if response["id"].is_null() && response["error"]["code"] == -32700 => {
                parse_errors += 1
            }
            None => {}
        }
    }
    let owed: BTreeSet<u64> = messages
        .iter()
        .filter_map(|m| match m.expect {
            Expect::Answer(id) => Some(id),
            _ => None,
        })
        .collect();
    for id in &owed {
        assert_eq!(by_id.get(id), Some(&1), "request {id} answered once");
    }
    let undecodable = messages
        .iter()
        .filter(|m| m.expect == Expect::ParseError)
        .count();
    assert_eq!(
        parse_errors, undecodable,
        "one parse error per undecodable message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_lines_on_stdio_leave_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(dir.path(), &["--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tagguard serve starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |bytes: &[u8]| {
        stdin.write_all(bytes).await.expect("the server reads");
        stdin.write_all(b"\n").await.expect("the server reads");
    };
    send(initialize(1).to_string().as_bytes()).await;
    send(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            .to_string()
            .as_bytes(),
    )
    .await;
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let mut list = Value::Null;
    while list["id"] != 2 {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the server answers");
        list = serde_json::from_str(&line).unwrap();
    }
    let messages = hostile_messages(&tool_arguments(&list), 1000, 1024 * 1024);
    // Requests run concurrently, so answers come in any order: read until every request with
    // an id, the last valid call included, has been answered. Read while writing: the
    // server's answers must not back up into its stdout pipe.
    let mut waiting: BTreeSet<u64> = messages
        .iter()
        .filter_map(|m| match m.expect {
            Expect::Answer(id) => Some(id),
            _ => None,
        })
        .chain([999_999])
        .collect();
    let reader = tokio::spawn(async move {
        let mut responses = Vec::new();
        while let Ok(Some(line)) = stdout.next_line().await {
            let value: Value = serde_json::from_str(&line).expect("every output line is JSON");
            if let Some(id) = value["id"].as_u64() {
                waiting.remove(&id);
            }
            responses.push(value);
            if waiting.is_empty() {
                break;
            }
        }
        responses
    });
    let writing = async {
        for message in &messages {
            send(&message.bytes).await;
        }
        send(valid_call(999_999).to_string().as_bytes()).await;
    };
    tokio::time::timeout(Duration::from_secs(300), writing)
        .await
        .expect("the server keeps reading (no hang)");
    let responses = tokio::time::timeout(Duration::from_secs(300), reader)
        .await
        .expect("the server answers everything (no hang)")
        .unwrap();
    let last = responses
        .iter()
        .find(|r| r["id"] == 999_999)
        .expect("the valid call is answered");
    assert_eq!(last["result"]["isError"], false, "{last}");
    check_answers(&messages, &responses);
    // Only the end of input ends the server, cleanly.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits after stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_bodies_over_http_leave_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = serve(dir.path(), &["--http", &addr])
        .spawn()
        .expect("starts");
    let url = format!("http://{addr}/mcp");
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, session: Option<String>| {
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body);
        if let Some(session) = session {
            request = request
                .header("Mcp-Session-Id", session)
                .header("MCP-Protocol-Version", "2025-11-25");
        }
        request.send()
    };
    // The server starts listening shortly.
    let mut opened = None;
    for _ in 0..100 {
        if let Ok(response) = post(initialize(1).to_string().into_bytes(), None).await {
            opened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = opened.expect("the HTTP server starts");
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list: Value = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            .to_string()
            .into_bytes(),
        Some(session.clone()),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let messages = hostile_messages(&tool_arguments(&list), 1000, 1024 * 1024);
    let mut responses = Vec::new();
    let all = async {
        for message in &messages {
            let answer = post(message.bytes.clone(), Some(session.clone()))
                .await
                .expect("every body gets an HTTP answer");
            let status = answer.status().as_u16();
            assert!(
                matches!(status, 200 | 202 | 400 | 413),
                "status {status} for {:?}",
                String::from_utf8_lossy(&message.bytes[..message.bytes.len().min(80)])
            );
            let body = answer.bytes().await.expect("a whole answer");
            if !body.is_empty() {
                responses.push(serde_json::from_slice::<Value>(&body).expect("JSON answers"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .expect("no hang");
    check_answers(&messages, &responses);
    let last: Value = post(valid_call(999_999).to_string().into_bytes(), Some(session))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    let _ = child.kill().await;
}
