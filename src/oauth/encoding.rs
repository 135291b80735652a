//! The few encodings OAuth needs, written here rather than pulled in: base64 (standard, for
//! `client_secret_basic`; URL-safe without padding, for PKCE and random values), percent
//! encoding for forms and query strings and its decoding, and random bytes from the system.

use std::io::Read;

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_with(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 as `Authorization: Basic` takes it.
pub fn base64(bytes: &[u8]) -> String {
    base64_with(bytes, STD, true)
}

/// URL-safe base64 without padding (RFC 7636's `BASE64URL`).
pub fn base64url(bytes: &[u8]) -> String {
    base64_with(bytes, URL, false)
}

/// `n` bytes from the system's random source.
pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// 32 random bytes as base64url: a PKCE verifier, a `state`.
pub fn random_token() -> std::io::Result<String> {
    Ok(base64url(&random_bytes(32)?))
}

/// PKCE's S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(verifier.as_bytes()))
}

/// Percent encoding of everything but RFC 3986's unreserved characters.
pub fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&...`, each percent-encoded (a form body, a query).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", percent(k), percent(v))).collect::<Vec<_>>().join("&")
}

/// One value of a query string, decoded (`+` is a space).
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets() {
        fn check(input: &[u8], std: &str, url: &str) {
            assert_eq!(base64(input), std);
            assert_eq!(base64url(input), url);
        }
        check(b"", "", "");
        check(b"f", "Zg==", "Zg");
        check(b"fo", "Zm8=", "Zm8");
        check(b"foo", "Zm9v", "Zm9v");
        check(b"foob", "Zm9vYg==", "Zm9vYg");
        check(&[0xfb, 0xff, 0xfe], "+//+", "-__-");
    }

    #[test]
    fn pkce_s256_matches_rfc_7636() {
        // Computed apart (Python: hashlib.sha256, base64.urlsafe_b64encode, padding stripped).
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7cL2B6rTE4Ps8"),
            "nGo8NFqgRwU1zdbL9pb4rncqsQIJgp9H_T44h__mJzc"
        );
        let v = random_token().unwrap();
        assert_eq!(v.len(), 43);
        assert_ne!(v, random_token().unwrap());
    }

    #[test]
    fn forms_and_queries_round_trip() {
        assert_eq!(form(&[("a b", "c&d=é")]), "a%20b=c%26d%3D%C3%A9");
        assert_eq!(query_value("code=x%2By&state=s+t&iss=", "state").as_deref(), Some("s t"));
        assert_eq!(query_value("code=x%2By", "code").as_deref(), Some("x+y"));
        assert_eq!(query_value("code=x%2", "code").as_deref(), Some("x%2"));
        assert_eq!(query_value("code=x", "iss"), None);
    }
}
