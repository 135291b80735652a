//! Ollama's settings: where it is (`OLLAMA_URL`, `OLLAMA_HOST`, `OLLAMA_PORT`) and the
//! embedding model the tool search reranks with (`AGENTHUB_EMBED_MODEL`).

use super::Source;
use crate::error::{Error, Result};

/// Ollama's own address forms: `OLLAMA_URL`, else `OLLAMA_HOST` as `host`, `host:port` or a URL,
/// with `OLLAMA_PORT` filling a missing port. `0.0.0.0` (a bind address) means this machine.
pub(super) fn url(src: &Source) -> Result<String> {
    if let Some((url, name)) = src.get("OLLAMA_URL") {
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Config(format!("{name}: expected an http:// URL, got '{url}'")));
        }
        return Ok(url);
    }
    let port: u16 = src.parse("OLLAMA_PORT", 11434, "a port number")?;
    let Some((raw, name)) = src.get("OLLAMA_HOST") else {
        return Ok(format!("http://127.0.0.1:{port}"));
    };
    let raw = raw.trim().trim_end_matches('/');
    let (scheme, rest) = match raw.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        Some((s, _)) => return Err(Error::Config(format!("{name}: unsupported scheme '{s}' in '{raw}'"))),
        None => ("http", raw),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let authority = if authority.is_empty() {
        "127.0.0.1".to_string()
    } else if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    let authority = authority.replacen("0.0.0.0", "127.0.0.1", 1).replacen("[::]", "[::1]", 1);
    if let Some(p) = authority.rsplit(':').next() {
        if p.parse::<u16>().is_err() {
            return Err(Error::Config(format!("{name}: bad port in '{raw}'")));
        }
    }
    Ok(format!("{scheme}://{authority}{path}"))
}

/// `AGENTHUB_EMBED_MODEL`, trimmed; unset or blank: None (the tool search stays lexical).
pub(super) fn embed_model(src: &Source) -> Option<String> {
    src.get("AGENTHUB_EMBED_MODEL").map(|(m, _)| m.trim().to_string()).filter(|m| !m.is_empty())
}
