//! `agenthub server start|stop|restart|status [NAME]`: a person's hand on a running hub's servers
//! from the shell, as the dashboard's buttons are — a client of the hub's API (`AGENTHUB_URL`,
//! `AGENTHUB_TOKEN`); and `agenthub healthcheck`. A stop here holds the server as a stop on the
//! dashboard does, until a start here or there.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Longest a start waits: the hub answers once the server is up or its launch failed, which an
/// npm server's first install may make long.
const START_WAIT: Duration = Duration::from_secs(600);

pub const USAGE: &str = "usage: agenthub server start|stop|restart NAME [--url URL] | status [NAME] [--url URL] \
     | auth NAME [--url URL]";

/// How long `agenthub auth` waits for the person to finish signing in.
const SIGN_IN_WAIT: Duration = Duration::from_secs(600);

/// `agenthub server ARGS` against the hub at `--url` (else `url`): 0 done, 1 refused or unreachable, 2 usage.
pub fn command(args: &[String], url: &str, token: Option<&str>) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (args, url) = match args.iter().position(|a| a == "--url") {
        Some(i) if i + 1 < args.len() => ([&args[..i], &args[i + 2..]].concat(), args[i + 1].as_str()),
        Some(_) => {
            eprintln!("agenthub server: --url needs a value");
            return ExitCode::from(2);
        }
        None => (args.to_vec(), url),
    };
    let args = args.as_slice();
    let request = match args {
        [verb, name] if matches!(verb.as_str(), "start" | "stop" | "restart") => {
            ("POST", format!("/servers/{}/{verb}", encode(name)))
        }
        [verb, name] if verb == "status" => ("GET", format!("/servers/{}", encode(name))),
        [verb] if verb == "status" => ("GET", "/servers".to_string()),
        [verb, name] if verb == "auth" => return sign_in(url, token, name),
        _ => {
            eprintln!("agenthub server: {USAGE}");
            return ExitCode::from(2);
        }
    };
    match call(url, token, request.0, &request.1) {
        Ok((code, body)) if (200..300).contains(&code) => {
            match body.get("servers").and_then(Value::as_array) {
                Some(all) => all.iter().for_each(|s| println!("{}", line(s))),
                None => println!("{}", line(&body)),
            }
            ExitCode::SUCCESS
        }
        Ok((code, body)) => {
            let why = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no reason given");
            eprintln!("agenthub server: {} {}: {code}: {why}", request.0, request.1);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("agenthub server: no hub at {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `agenthub auth NAME`: the authorization URL printed, then a wait until the server runs (the
/// person signs in in a browser; the hub's callback starts the server).
fn sign_in(url: &str, token: Option<&str>, name: &str) -> ExitCode {
    let path = format!("/servers/{}/auth", encode(name));
    let link = match call(url, token, "GET", &path) {
        Ok((200, body)) => body["authorization_url"].as_str().unwrap_or_default().to_string(),
        Ok((code, body)) => {
            let why = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no reason given");
            eprintln!("agenthub auth: GET {path}: {code}: {why}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("agenthub auth: no hub at {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Open this URL in a browser to sign in to {name}:\n\n  {link}\n\nWaiting for the sign-in...");
    let until = std::time::Instant::now() + SIGN_IN_WAIT;
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok((200, s)) = call(url, token, "GET", &format!("/servers/{}", encode(name))) {
            if s["status"] == "RUNNING" {
                println!("{}", line(&s));
                return ExitCode::SUCCESS;
            }
        }
    }
    eprintln!("agenthub auth: {name} is not running after {}s", SIGN_IN_WAIT.as_secs());
    ExitCode::FAILURE
}

/// One server as a line: `name: STATUS` and what goes with it.
fn line(s: &Value) -> String {
    let mut out = format!("{}: {}", s["name"].as_str().unwrap_or("?"), s["status"].as_str().unwrap_or("?"));
    if s["held"] == true {
        out.push_str(" (stopped by you: `agenthub server start` runs it again)");
    }
    if let Some(pid) = s["pid"].as_i64() {
        out.push_str(&format!(", pid {pid}"));
    }
    if let Some(e) = s["last_error"].as_str().filter(|e| !e.is_empty()) {
        out.push_str(&format!("; last error: {}", crate::text::for_log(e, 300)));
    }
    out
}

fn call(url: &str, token: Option<&str>, method: &str, path: &str) -> Result<(u16, Value), String> {
    let agent = crate::http_agent(Duration::from_secs(5), Some(START_WAIT));
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let auth = token.map(str::trim).filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}"));
    let sent = match (method, auth) {
        ("POST", Some(a)) => agent.post(&target).header("Authorization", a).send(""),
        ("POST", None) => agent.post(&target).send(""),
        (_, Some(a)) => agent.get(&target).header("Authorization", a).call(),
        (_, None) => agent.get(&target).call(),
    };
    let mut resp = sent.map_err(|e| e.to_string())?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((resp.status().as_u16(), serde_json::from_str(&text).unwrap_or_default()))
}

/// `agenthub healthcheck`, for a container's `HEALTHCHECK` (no curl in the image): 0 on 200
/// (and, `strict`, not degraded).
pub fn healthcheck(url: &str, strict: bool, token: Option<&str>) -> ExitCode {
    match probe_health(url, token) {
        Err(e) => eprintln!("unhealthy: {url}: {e}"),
        Ok((code, status)) if code != 200 || (strict && status != "ok") => {
            eprintln!("unhealthy: {url}/health answered {code} ({status})")
        }
        Ok((_, status)) => {
            println!("{status}");
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::FAILURE
}

/// GET `url/health`: its status code and `status` field, or why nothing answered.
pub fn probe_health(url: &str, token: Option<&str>) -> std::result::Result<(u16, String), String> {
    let agent = crate::http_agent(Duration::from_secs(2), Some(Duration::from_secs(5)));
    let mut req = agent.get(format!("{}/health", url.trim_end_matches('/')));
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Ok((resp.status().as_u16(), body["status"].as_str().unwrap_or("?").to_string()))
}

/// A server name in a path: names are checked by the hub; only what would leave the segment
/// is escaped here.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_server_reads_as_one_line() {
        let check = |s: Value, expected: &str| assert_eq!(line(&s), expected);
        check(json!({"name": "fx", "status": "RUNNING", "pid": 12, "held": false}), "fx: RUNNING, pid 12");
        check(
            json!({"name": "fx", "status": "STOPPED", "held": true, "last_error": "a\nb"}),
            "fx: STOPPED (stopped by you: `agenthub server start` runs it again); last error: a\\nb",
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
