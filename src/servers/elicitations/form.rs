//! A person's answer to a form elicitation, checked against the request's `requestedSchema` as
//! MCP's elicitation defines a form: a flat object of primitive fields — strings (`minLength`,
//! `maxLength`, `format`: email, uri, date, date-time), numbers and integers (`minimum`,
//! `maximum`), booleans, single-choice enums (`enum`, or `oneOf` of `const`s) and multi-choice
//! ones (an `array` whose `items` are such an enum; `minItems`, `maxItems`) — and `required`.
//! Pure; each error names the field (`content.age: ...`) so the person knows what to fix.

use serde_json::{Map, Value};

/// Whether `content` fills the form `schema` describes; else why, naming the field.
pub fn check(schema: &Value, content: &Value) -> Result<(), String> {
    let Some(content) = content.as_object() else {
        return Err(format!("content: expected an object of the form's fields, got {}", shown(content)));
    };
    let none = Map::new();
    let fields = schema.get("properties").and_then(Value::as_object).unwrap_or(&none);
    let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
    if let Some(missing) = required.filter_map(Value::as_str).find(|name| !content.contains_key(*name)) {
        return Err(format!("content.{missing}: required"));
    }
    for (name, value) in content {
        let Some(field) = fields.get(name) else {
            return Err(format!("content.{name}: not a field of this form"));
        };
        check_field(field, value).map_err(|why| format!("content.{name}: {why}"))?;
    }
    Ok(())
}

fn check_field(field: &Value, v: &Value) -> Result<(), String> {
    if let Some(choices) = choices(field) {
        return match choices.contains(&v) {
            true => Ok(()),
            false => Err(format!("expected one of {}, got {}", listed(&choices), shown(v))),
        };
    }
    match field.get("type").and_then(Value::as_str) {
        Some("string") => string(field, v),
        Some("number") => number(field, v, false),
        Some("integer") => number(field, v, true),
        Some("boolean") if v.is_boolean() => Ok(()),
        Some("boolean") => Err(format!("expected true or false, got {}", shown(v))),
        Some("array") => several(field, v),
        other => Err(format!(
            "the form asks for a field of type {} that an MCP form cannot have",
            other.unwrap_or("(none)")
        )),
    }
}

/// A field's choices: `enum`, or the `const`s of `oneOf`/`anyOf` (titled choices).
fn choices(field: &Value) -> Option<Vec<&Value>> {
    if let Some(values) = field.get("enum").and_then(Value::as_array) {
        return Some(values.iter().collect());
    }
    let titled = field.get("oneOf").or_else(|| field.get("anyOf")).and_then(Value::as_array)?;
    Some(titled.iter().filter_map(|c| c.get("const")).collect())
}

fn string(field: &Value, v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Err(format!("expected text, got {}", shown(v))) };
    let chars = s.chars().count();
    if let Some(min) = field.get("minLength").and_then(Value::as_u64).filter(|m| chars < *m as usize) {
        return Err(format!("at least {min} characters, got {chars}"));
    }
    if let Some(max) = field.get("maxLength").and_then(Value::as_u64).filter(|m| chars > *m as usize) {
        return Err(format!("at most {max} characters, got {chars}"));
    }
    let format = field.get("format").and_then(Value::as_str).unwrap_or("");
    let fits = match format {
        "email" => is_email(s),
        "uri" => is_uri(s),
        "date" => is_date(s),
        "date-time" => s.split_once(['T', 't']).is_some_and(|(d, t)| is_date(d) && is_time(t)),
        _ => true,
    };
    match fits {
        true => Ok(()),
        false => Err(format!(
            "expected {} ({format}), got {}",
            FORMATS.iter().find(|f| f.0 == format).map_or("", |f| f.1),
            shown(v)
        )),
    }
}

/// The formats checked, and what each looks like.
const FORMATS: [(&str, &str); 4] = [
    ("email", "an email address"),
    ("uri", "a URI such as https://example.com/"),
    ("date", "a date such as 2025-06-30"),
    ("date-time", "a date and time such as 2025-06-30T14:00:00Z"),
];

fn number(field: &Value, v: &Value, integer: bool) -> Result<(), String> {
    let whole = |x: f64| x.fract() == 0.0;
    let Some(x) = v.as_f64().filter(|x| !integer || whole(*x)) else {
        let what = if integer { "a whole number" } else { "a number" };
        return Err(format!("expected {what}, got {}", shown(v)));
    };
    if let Some(min) = field.get("minimum").and_then(Value::as_f64).filter(|m| x < *m) {
        return Err(format!("at least {min}, got {x}"));
    }
    if let Some(max) = field.get("maximum").and_then(Value::as_f64).filter(|m| x > *m) {
        return Err(format!("at most {max}, got {x}"));
    }
    Ok(())
}

/// A multi-choice field: an array of its items' choices.
fn several(field: &Value, v: &Value) -> Result<(), String> {
    let Some(picked) = v.as_array() else {
        return Err(format!("expected a list of choices, got {}", shown(v)));
    };
    let choices = field.get("items").and_then(choices).unwrap_or_default();
    if let Some(bad) = picked.iter().find(|p| !choices.contains(p)) {
        return Err(format!("expected choices among {}, got {}", listed(&choices), shown(bad)));
    }
    if let Some(min) = field.get("minItems").and_then(Value::as_u64).filter(|m| picked.len() < *m as usize) {
        return Err(format!("pick at least {min}, got {}", picked.len()));
    }
    if let Some(max) = field.get("maxItems").and_then(Value::as_u64).filter(|m| picked.len() > *m as usize) {
        return Err(format!("pick at most {max}, got {}", picked.len()));
    }
    Ok(())
}

fn is_email(s: &str) -> bool {
    let Some((user, domain)) = s.rsplit_once('@') else { return false };
    !user.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    let mut letters = scheme.chars();
    letters.next().is_some_and(|c| c.is_ascii_alphabetic())
        && letters.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str, len: usize| {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u32>().ok()).flatten()
    };
    match parts.as_slice() {
        [y, m, d] => {
            num(y, 4).is_some()
                && num(m, 2).is_some_and(|m| (1..=12).contains(&m))
                && num(d, 2).is_some_and(|d| (1..=31).contains(&d))
        }
        _ => false,
    }
}

/// `hh:mm:ss` with an optional fraction, then `Z` or an offset `+hh:mm`.
fn is_time(s: &str) -> bool {
    let two = |t: &str, i: usize, max: u8| {
        let digits = t.get(i..i + 2).filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        digits.and_then(|d| d.parse::<u8>().ok()).is_some_and(|d| d <= max)
    };
    let clock = two(s, 0, 23)
        && s.get(2..3) == Some(":")
        && two(s, 3, 59)
        && s.get(5..6) == Some(":")
        && two(s, 6, 60);
    if !clock {
        return false;
    }
    let zone = s[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    zone.eq_ignore_ascii_case("z")
        || zone.len() == 6
            && zone.starts_with(['+', '-'])
            && two(zone, 1, 23)
            && zone.get(3..4) == Some(":")
            && two(zone, 4, 59)
}

fn listed(choices: &[&Value]) -> String {
    choices.iter().map(|c| shown(c)).collect::<Vec<_>>().join(", ")
}

/// A value as the error shows it, cut short.
fn shown(v: &Value) -> String {
    crate::text::cut_marked(&v.to_string(), 80)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn check(content: serde_json::Value, expected: Result<(), &str>) {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 2, "maxLength": 10},
                "email": {"type": "string", "format": "email"},
                "site": {"type": "string", "format": "uri"},
                "born": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "score": {"type": "number", "maximum": 1.5},
                "ok": {"type": "boolean"},
                "color": {"type": "string", "enum": ["red", "green"]},
                "size": {"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l", "title": "Large"}]},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "maxItems": 2}
            },
            "required": ["name"]
        });
        assert_eq!(super::check(&schema, &content), expected.map_err(str::to_string), "{content}");
    }

    #[test]
    fn answers_are_checked_against_the_form() {
        check(json!({"name": "Ann"}), Ok(()));
        check(
            json!({"name": "Ann", "email": "a@b.co", "site": "https://x.y/", "born": "1990-02-03",
                   "at": "2025-06-30T14:00:00Z", "age": 30, "score": 1.5, "ok": false, "color": "red",
                   "size": "l", "tags": ["a", "c"]}),
            Ok(()),
        );
        check(json!({"name": "Ann", "age": 30.0}), Ok(()));
        check(json!({"name": "Ann", "at": "2025-06-30T14:00:00.5+02:00"}), Ok(()));
        check(json!({}), Err("content.name: required"));
        check(json!("Ann"), Err("content: expected an object of the form's fields, got \"Ann\""));
        check(json!({"name": "A"}), Err("content.name: at least 2 characters, got 1"));
        check(json!({"name": "Annabelle Lee"}), Err("content.name: at most 10 characters, got 13"));
        check(json!({"name": 3}), Err("content.name: expected text, got 3"));
        check(json!({"name": "Ann", "age": "x"}), Err("content.age: expected a whole number, got \"x\""));
        check(json!({"name": "Ann", "age": 1.5}), Err("content.age: expected a whole number, got 1.5"));
        check(json!({"name": "Ann", "age": -1}), Err("content.age: at least 0, got -1"));
        check(json!({"name": "Ann", "score": 2}), Err("content.score: at most 1.5, got 2"));
        check(json!({"name": "Ann", "ok": "yes"}), Err("content.ok: expected true or false, got \"yes\""));
        check(
            json!({"name": "Ann", "color": "blue"}),
            Err("content.color: expected one of \"red\", \"green\", got \"blue\""),
        );
        check(
            json!({"name": "Ann", "size": "m"}),
            Err("content.size: expected one of \"s\", \"l\", got \"m\""),
        );
        check(
            json!({"name": "Ann", "tags": ["a", "z"]}),
            Err("content.tags: expected choices among \"a\", \"b\", \"c\", got \"z\""),
        );
        check(json!({"name": "Ann", "tags": ["a", "b", "c"]}), Err("content.tags: pick at most 2, got 3"));
        check(json!({"name": "Ann", "nick": "x"}), Err("content.nick: not a field of this form"));
        check(
            json!({"name": "Ann", "email": "ann"}),
            Err("content.email: expected an email address (email), got \"ann\""),
        );
        check(
            json!({"name": "Ann", "site": "not a uri"}),
            Err("content.site: expected a URI such as https://example.com/ (uri), got \"not a uri\""),
        );
        check(
            json!({"name": "Ann", "born": "1990-13-01"}),
            Err("content.born: expected a date such as 2025-06-30 (date), got \"1990-13-01\""),
        );
        check(
            json!({"name": "Ann", "at": "2025-06-30 14:00"}),
            Err(
                "content.at: expected a date and time such as 2025-06-30T14:00:00Z (date-time), got \"2025-06-30 14:00\"",
            ),
        );
    }
}
