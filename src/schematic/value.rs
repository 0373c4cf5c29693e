//! Free-form YAML values (overlay options), kept typed and with go-yaml's map key order.

use crate::yaml::emit::Emit;
use std::cmp::Ordering;

/// A decoded YAML value, as go-yaml decodes into `any`.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// A date or date-time, normalised to RFC 3339 in UTC (go-yaml decodes these into a
    /// `time.Time` and writes them back plain).
    Timestamp(String),
    Seq(Vec<Value>),
    /// Entries unique by key and sorted in go-yaml's encoder order (see [`key_order`]).
    Map(Vec<(Value, Value)>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Uint(a), Value::Uint(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// Builds a map from entries in document order: a later entry replaces an earlier one
    /// with an equal key (Go map semantics), and the result is sorted for emission.
    pub fn map_from_entries(entries: Vec<(Value, Value)>) -> Value {
        let mut unique: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match unique.iter_mut().find(|(existing, _)| *existing == key) {
                Some(slot) => slot.1 = value,
                None => unique.push((key, value)),
            }
        }
        unique.sort_by(|(a, _), (b, _)| key_order(a, b));
        Value::Map(unique)
    }

    pub fn to_emit(&self) -> Emit {
        match self {
            Value::Null => Emit::Null,
            Value::Bool(value) => Emit::Bool(*value),
            Value::Int(value) => Emit::Int(*value),
            Value::Uint(value) => Emit::Uint(*value),
            Value::Float(value) => Emit::Float(*value),
            Value::Str(value) => Emit::Str(value.clone()),
            Value::Timestamp(value) => Emit::Plain(value.clone()),
            Value::Seq(items) => Emit::Seq(items.iter().map(Value::to_emit).collect()),
            Value::Map(entries) => Emit::Map(
                entries
                    .iter()
                    .map(|(key, value)| (key.to_emit(), value.to_emit()))
                    .collect(),
            ),
        }
    }

    /// Go's `reflect.Kind` numbering, which orders keys of different types.
    fn kind_rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Uint(_) => 11,
            Value::Float(_) => 14,
            Value::Null => 20,
            Value::Map(_) => 21,
            Value::Seq(_) => 23,
            Value::Str(_) => 24,
            Value::Timestamp(_) => 25,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Value::Bool(value) => Some(if *value { 1.0 } else { 0.0 }),
            Value::Int(value) => Some(*value as f64),
            Value::Uint(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            _ => None,
        }
    }
}

/// go-yaml's encoder key order: numbers (and bools) by value, then by kind; strings in a
/// "natural" order where runs of digits compare as numbers and letters sort before other
/// characters; keys of different kinds by kind.
pub fn key_order(a: &Value, b: &Value) -> Ordering {
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
        if x != y {
            return x < y;
        }
        if a.kind_rank() != b.kind_rank() {
            return a.kind_rank() < b.kind_rank();
        }
        return match (a, b) {
            (Value::Int(x), Value::Int(y)) => x < y,
            (Value::Uint(x), Value::Uint(y)) => x < y,
            (Value::Bool(x), Value::Bool(y)) => !x & y,
            _ => false,
        };
    }
    let (Value::Str(a), Value::Str(b)) = (a, b) else {
        return a.kind_rank() < b.kind_rank();
    };
    natural_less(a, b)
}

fn natural_less(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // The value of the digit run starting at `i` (wrapping as Go's int does), and where it ends.
    let number = |text: &[char], i: usize, start: i64| {
        let digits = text.iter().skip(i).take_while(|c| c.is_ascii_digit());
        digits.fold((start, i), |(value, end), c| {
            let digit = i64::from(c.to_digit(10).unwrap_or_default());
            (value.wrapping_mul(10).wrapping_add(digit), end + 1)
        })
    };
    let mut digits = false;
    for (i, (&ac, &bc)) in a.iter().zip(&b).enumerate() {
        if ac == bc {
            digits = ac.is_ascii_digit();
            continue;
        }
        let a_letter = ac.is_alphabetic();
        let b_letter = bc.is_alphabetic();
        if a_letter && b_letter {
            return ac < bc;
        }
        if a_letter || b_letter {
            return if digits { a_letter } else { b_letter };
        }
        // A zero inside a number that already had a non-zero digit is not a leading zero.
        let mut start = 0i64;
        if (ac == '0' || bc == '0')
            && a.iter()
                .take(i)
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .any(|&c| c != '0')
        {
            start = 1;
        }
        let (a_number, a_end) = number(&a, i, start);
        let (b_number, b_end) = number(&b, i, start);
        if a_number != b_number {
            return a_number < b_number;
        }
        if a_end != b_end {
            return a_end < b_end;
        }
        return ac < bc;
    }
    a.len() < b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut values: Vec<Value> = keys.iter().map(|k| Value::Str(k.to_string())).collect();
        values.sort_by(key_order);
        values
            .into_iter()
            .map(|v| match v {
                Value::Str(s) => s,
                other => panic!("a string key became {other:?}"),
            })
            .collect()
    }

    #[test]
    fn natural_string_order() {
        assert_eq!(
            sorted(&["zeta", "alpha", "mid", "configTxtAppend"]),
            ["alpha", "configTxtAppend", "mid", "zeta"]
        );
        assert_eq!(sorted(&["a10", "a2", "a1"]), ["a1", "a2", "a10"]);
        assert_eq!(sorted(&["b", "a_", "a"]), ["a", "a_", "b"]);
        assert_eq!(sorted(&["x", "_x"]), ["_x", "x"]);
        assert_eq!(sorted(&["a1x", "a1_"]), ["a1x", "a1_"]);
        assert_eq!(sorted(&["B", "a"]), ["B", "a"]);
    }

    #[test]
    fn mixed_kinds() {
        let mut keys = vec![
            Value::Str("a".into()),
            Value::Int(2),
            Value::Bool(true),
            Value::Float(1.5),
            Value::Null,
        ];
        keys.sort_by(key_order);
        assert_eq!(
            keys,
            vec![
                Value::Bool(true),
                Value::Float(1.5),
                Value::Int(2),
                Value::Null,
                Value::Str("a".into())
            ]
        );
    }

    #[test]
    fn later_duplicate_wins() {
        let map = Value::map_from_entries(vec![
            (Value::Int(1), Value::Str("first".into())),
            (Value::Int(1), Value::Str("second".into())),
        ]);
        assert_eq!(
            map,
            Value::Map(vec![(Value::Int(1), Value::Str("second".into()))])
        );
    }
}
