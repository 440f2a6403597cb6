//! The small JSON bodies of the dashboard's API routes, read field by field so that a wrong one is
//! refused with a message naming the field and what it must be. Each route turns an [`Invalid`] into
//! its 400 answer.

use axum::body::Bytes;
use serde_json::{Map, Value};

/// Why a body was refused: the message for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

/// What a JSON value is, in the words an error message uses.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The body's JSON object, holding only `allowed` fields; an empty body is an empty object.
/// `example` shows the expected shape in the message for a body that is not an object.
pub fn object(body: &Bytes, allowed: &[&str], example: Option<&str>) -> Result<Map<String, Value>, Invalid> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Invalid(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Invalid(match example {
            Some(example) => {
                format!("the body must be a JSON object such as {example}, not {}", kind_of(&value))
            }
            None => format!("the body must be a JSON object, not {}", kind_of(&value)),
        }));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Invalid(format!(
            "unknown field '{}'; the fields are {}",
            unknown.chars().take(40).collect::<String>(),
            allowed.join(", ")
        )));
    }
    Ok(map)
}

/// A text field, or `None` when absent or null.
pub fn text(map: &Map<String, Value>, field: &str) -> Result<Option<String>, Invalid> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Invalid(format!("{field}: must be text, not {}", kind_of(other)))),
    }
}

/// A true-or-false field; absent or null is false.
pub fn flag(map: &Map<String, Value>, field: &str) -> Result<bool, Invalid> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Invalid(format!("{field}: must be true or false, not {}", kind_of(other)))),
    }
}

/// A whole number field, or `None` when absent or null.
pub fn whole(map: &Map<String, Value>, field: &str) -> Result<Option<i64>, Invalid> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| Invalid(format!("{field}: must be a whole number, not {n}")))
        }
        Some(other) => Err(Invalid(format!("{field}: must be a whole number, not {}", kind_of(other)))),
    }
}

/// A whole number field from `min` to `max`, or `None` when absent or null.
pub fn whole_in(map: &Map<String, Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, Invalid> {
    let refused = |what: &dyn std::fmt::Display| {
        Invalid(format!("{field}: must be a whole number from {min} to {max}, not {what}"))
    };
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Ok(Some(n)),
            None => Err(refused(n)),
        },
        Some(other) => Err(refused(&kind_of(other))),
    }
}

/// A list of text, empty when absent or null.
pub fn text_list(map: &Map<String, Value>, field: &str) -> Result<Vec<String>, Invalid> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(Invalid(format!("{field}: every item must be text, not {}", kind_of(other)))),
            })
            .collect(),
        Some(other) => Err(Invalid(format!("{field}: must be a list of text, not {}", kind_of(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_body_is_an_object_of_known_fields() {
        let fields = ["goblin", "task", "dry_run"];
        assert!(object(&body("  \n"), &fields, None).unwrap().is_empty());
        assert!(
            object(&body("{nope"), &fields, None).unwrap_err().0.starts_with("the body is not valid JSON")
        );
        assert_eq!(
            object(&body("[1]"), &fields, None).unwrap_err().0,
            "the body must be a JSON object, not a list"
        );
        assert_eq!(
            object(&body("7"), &fields, Some("{\"goblin\": \"hello\"}")).unwrap_err().0,
            "the body must be a JSON object such as {\"goblin\": \"hello\"}, not a number"
        );
        assert_eq!(
            object(&body("{\"extra\": 1}"), &fields, None).unwrap_err().0,
            "unknown field 'extra'; the fields are goblin, task, dry_run"
        );
        let long = format!("{{\"{}\": 1}}", "x".repeat(500));
        assert!(object(&Bytes::from(long), &fields, None).unwrap_err().0.len() < 120);
    }

    #[test]
    fn each_field_names_what_it_must_be() {
        let map = object(
            &body(r#"{"t": 5, "f": "yes", "w": 1.5, "r": 70, "l": ["a", 2], "ok": "x", "n": null, "b": true, "i": -3}"#),
            &["t", "f", "w", "r", "l", "ok", "n", "b", "i"],
            None,
        )
        .unwrap();
        assert_eq!(text(&map, "t").unwrap_err().0, "t: must be text, not a number");
        assert_eq!(text(&map, "ok").unwrap().as_deref(), Some("x"));
        assert_eq!(text(&map, "n").unwrap(), None);
        assert_eq!(flag(&map, "f").unwrap_err().0, "f: must be true or false, not text");
        assert!(flag(&map, "b").unwrap());
        assert!(!flag(&map, "missing").unwrap());
        assert_eq!(whole(&map, "w").unwrap_err().0, "w: must be a whole number, not 1.5");
        assert_eq!(whole(&map, "i").unwrap(), Some(-3));
        assert_eq!(
            whole_in(&map, "r", 1, 60).unwrap_err().0,
            "r: must be a whole number from 1 to 60, not 70"
        );
        assert_eq!(
            whole_in(&map, "ok", 1, 60).unwrap_err().0,
            "ok: must be a whole number from 1 to 60, not text"
        );
        assert_eq!(whole_in(&map, "r", 1, 70).unwrap(), Some(70));
        assert_eq!(text_list(&map, "l").unwrap_err().0, "l: every item must be text, not a number");
        assert_eq!(text_list(&map, "n").unwrap(), Vec::<String>::new());
    }
}
