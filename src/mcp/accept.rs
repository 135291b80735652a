//! The Accept header, as the Streamable HTTP transport reads it.

/// Whether an Accept header takes `mime` (a missing header takes anything).
pub(super) fn accepts(accept: Option<&str>, mime: &str) -> bool {
    let Some(a) = accept else { return true };
    a.split(',').map(|p| p.split(';').next().unwrap_or("").trim()).any(|m| {
        m.eq_ignore_ascii_case(mime)
            || m == "*/*"
            || m.eq_ignore_ascii_case(&format!("{}/*", mime.split('/').next().unwrap_or("")))
    })
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_headers() {
        fn check(h: Option<&str>, mime: &str, ok: bool) {
            assert_eq!(accepts(h, mime), ok, "{h:?} {mime}");
        }
        check(None, "text/event-stream", true);
        check(Some("application/json, text/event-stream"), "text/event-stream", true);
        check(Some("application/json"), "text/event-stream", false);
        check(Some("*/*"), "application/json", true);
        check(Some("text/*;q=0.5"), "text/event-stream", true);
        check(Some("text/html"), "application/json", false);
    }
}
