//! Where things are in a YAML file: a map from dotted field paths
//! (`regions.eu-west-1.origins[0].address`) to the line and column of each key
//! and value, so every error, including semantic ones found after parsing, can
//! point at its place as `FILE:LINE:COL`.
//!
//! The values come from the same parser (`config::yaml`): one YAML 1.2 grammar, in
//! which `yes`, `no`, `on` and `off` are strings (a bool field refuses them).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
pub type Pos = (usize, usize);

/// Positions of every key and value in one document.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    /// The first key given twice in one mapping: its path and where it is repeated.
    pub duplicate: Option<(String, Pos)>,
}

enum Frame {
    /// In a mapping; `key` is set between a key and its value.
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

struct Builder {
    map: SourceMap,
    stack: Vec<Frame>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of the node starting now, advancing the parent's state. None for a key.
    fn place(&mut self, scalar: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // This node is a key (only scalar keys get a path).
                    let k = scalar.unwrap_or("?").to_string();
                    let full = join(path, &k);
                    match self.map.keys.entry(full) {
                        Entry::Occupied(e) => {
                            self.map.duplicate.get_or_insert((e.key().clone(), pos));
                        }
                        Entry::Vacant(e) => {
                            e.insert(pos);
                        }
                    }
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.place(Some(&value), pos) {
                    self.map.values.entry(p).or_insert(pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.place(None, pos) {
                    self.map.values.entry(p).or_insert(pos);
                }
            }
            // A collection is located by its key: the parser marks block
            // collections where their first entry ends, which points nowhere useful.
            Event::MappingStart(..) => {
                let path = self.place(None, pos).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.place(None, pos).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl SourceMap {
    /// Maps `text`; a syntax error gives its own position and message.
    pub fn parse(text: &str) -> Result<SourceMap, (Pos, String)> {
        let mut b = Builder {
            map: SourceMap::default(),
            stack: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut b, false).map_err(|e| {
            let m = e.marker();
            ((m.line(), m.col() + 1), e.info().to_string())
        })?;
        Ok(b.map)
    }

    /// Where the value at `path` starts; falls back to the nearest ancestor that exists.
    pub fn position(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p).or_else(|| self.keys.get(p)) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }

    /// Where the key of `path` is (for unknown or missing fields), else its value.
    pub fn key_position(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.position(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a: 1
regions:
  eu-west-1:
    origins:
      - address: x:1
      - { address: \"y:2\" }
list: [p, q]
";

    #[test]
    fn finds_keys_and_values() {
        let m = SourceMap::parse(DOC).unwrap();
        assert_eq!(m.position("a"), (1, 4));
        assert_eq!(m.key_position("a"), (1, 1));
        assert_eq!(m.position("regions.eu-west-1.origins[0].address"), (5, 18));
        assert_eq!(
            m.key_position("regions.eu-west-1.origins[1].address"),
            (6, 11)
        );
        assert_eq!(m.position("regions.eu-west-1.origins[1].address"), (6, 20));
        assert_eq!(m.position("list[1]"), (7, 11));
        // Unknown paths fall back to the closest ancestor.
        assert_eq!(m.position("regions.eu-west-1.weight"), (3, 3));
        assert_eq!(m.position("regions.eu-west-1.origins[1]"), (4, 5));
        assert_eq!(m.key_position("regions.eu-west-1"), (3, 3));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (pos, msg) = SourceMap::parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(pos.0 >= 1, "{pos:?} {msg}");
    }
}
