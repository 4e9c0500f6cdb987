//! The file's values, read by the same YAML 1.2 parser (yaml-rust2) that
//! `locate` uses for positions: one grammar for both, so a value and its position
//! can never disagree about what the file says. The tree is handed to serde as
//! plain data (`serde_json::Value`: maps, lists, strings, numbers, booleans, null),
//! which the config types deserialize with their usual rules.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// A value the config cannot hold: where (a dotted field path, as `locate` and
/// validation name fields) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: String,
    pub message: String,
    /// (line, column), when the parser knows it better than the path does.
    pub at: Option<(usize, usize)>,
}

/// The single document in `text` as plain data; an empty file is null. Syntax
/// errors are `locate`'s to report (it reads the text first), so they come back
/// here only as a message.
pub fn values(text: &str) -> Result<Value, Refused> {
    let mut docs = documents(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        _ => Err(refused(
            "",
            "more than one YAML document in the file".into(),
        )),
    }
}

/// Every document in `text` (`---`-separated), as plain data.
pub fn documents(text: &str) -> Result<Vec<Value>, Refused> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| Refused {
        path: String::new(),
        message: e.info().to_string(),
        at: Some((e.marker().line(), e.marker().col() + 1)),
    })?;
    docs.iter().map(|d| value(d, "")).collect()
}

fn refused(path: &str, message: String) -> Refused {
    Refused {
        path: path.to_string(),
        message,
        at: None,
    }
}

fn value(y: &Yaml, path: &str) -> Result<Value, Refused> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(r) => real(r).map_err(|m| refused(path, m))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| value(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = key(k).map_err(|m| refused(path, m))?;
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let v = value(v, &at)?;
                if map.insert(key.clone(), v).is_some() {
                    return Err(refused(&at, format!("duplicate entry with key `{key}`")));
                }
            }
            Value::Object(map)
        }
        // The loader resolves aliases to their anchors' values.
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(refused(path, "unsupported YAML node".into()))
        }
    })
}

/// A float: finite numbers only (`.inf` and `.nan` configure nothing).
fn real(r: &str) -> Result<Value, String> {
    r.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("`{r}` is not a finite number"))
}

/// Map keys are names (regions, countries, status codes): scalars as text.
fn key(k: &Yaml) -> Result<String, String> {
    match k {
        Yaml::String(s) | Yaml::Real(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        _ => Err("a map key must be a plain scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_follow_yaml_1_2() {
        let v = values("a: 10\nb: 1.5\nc: true\nd: no\ne: ~\nf: \"10\"\ng: 5s\nh: NO\n").unwrap();
        assert_eq!(
            v,
            json!({"a": 10, "b": 1.5, "c": true, "d": "no", "e": null, "f": "10", "g": "5s", "h": "NO"})
        );
    }

    #[test]
    fn nesting_anchors_and_keys() {
        let v = values("base: &b {w: 1}\nr: *b\nl: [1, x]\n503: y\n").unwrap();
        assert_eq!(
            v,
            json!({"base": {"w": 1}, "r": {"w": 1}, "l": [1, "x"], "503": "y"})
        );
    }

    #[test]
    fn what_configures_nothing_is_refused() {
        assert_eq!(values("").unwrap(), Value::Null);
        let err = |t: &str| values(t).unwrap_err();
        // The loader refuses a key given twice (`locate` names it first, with its path).
        let dup = err("r:\n  a: 1\n  a: 2\n");
        assert!(dup.message.contains("duplicated key"), "{dup:?}");
        assert_eq!(dup.at.map(|(line, _)| line), Some(3), "{dup:?}");
        let inf = err("l: [1, .inf]\n");
        assert_eq!(inf.path, "l[1]");
        assert!(inf.message.contains("finite"), "{inf:?}");
        assert!(err("a: 1\n---\nb: 2\n").message.contains("more than one"));
        assert!(err("? [a, b]\n: 1\n").message.contains("key"));
    }
}
