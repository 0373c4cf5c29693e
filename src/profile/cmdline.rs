//! Kernel command lines as Talos models them: an ordered list of keys, each with an ordered
//! list of values, rendered `key=value` (or bare `key` for an empty value).

/// An ordered kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    keys: Vec<(String, Vec<String>)>,
}

/// Splits `key=value` at the first `=`; a bare word has an empty value.
fn split(arg: &str) -> (&str, &str) {
    arg.split_once('=').unwrap_or((arg, ""))
}

impl Cmdline {
    fn position(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|(name, _)| name == key)
    }

    fn values_mut(&mut self, key: &str) -> Option<&mut Vec<String>> {
        self.keys
            .iter_mut()
            .find_map(|(name, values)| (name == key).then_some(values))
    }

    /// Adds a value to `key` (duplicates allowed), or a new key at the end.
    pub fn append(&mut self, key: &str, value: &str) {
        match self.values_mut(key) {
            Some(values) => values.push(value.to_string()),
            None => self.keys.push((key.to_string(), vec![value.to_string()])),
        }
    }

    /// Replaces all values of `key` in place, or adds it at the end.
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        match self.values_mut(key) {
            Some(existing) => *existing = values,
            None => self.keys.push((key.to_string(), values)),
        }
    }

    /// Parses whitespace-separated args and sets each key (repeated keys keep all values).
    pub fn set_all(&mut self, args: &str) {
        let mut parsed = Cmdline::default();
        for arg in args.split_whitespace() {
            let (key, value) = split(arg);
            parsed.append(key, value);
        }
        for (key, values) in parsed.keys {
            self.set(&key, values);
        }
    }

    /// Appends every arg of a whitespace-separated list.
    pub fn append_all(&mut self, args: &str) {
        for arg in args.split_whitespace() {
            let (key, value) = split(arg);
            self.append(key, value);
        }
    }

    /// Merges user-supplied args the way Talos does: `console` and `talos.platform` replace
    /// the defaults, `-key` removes a key, `-key=value` removes one value, anything else is
    /// appended.
    pub fn merge_extra(&mut self, extra: &[String]) {
        let mut replaced: Vec<(String, Vec<String>)> = Vec::new();
        for arg in extra.iter().flat_map(|arg| arg.split_whitespace()) {
            let (key, value) = split(arg);
            if let Some(removed) = key.strip_prefix('-') {
                if arg.contains('=') {
                    if let Some(values) = self.values_mut(removed) {
                        values.retain(|existing| existing != value);
                    }
                    // The key goes with its last value.
                    self.keys
                        .retain(|(name, values)| name != removed || !values.is_empty());
                } else if let Some(at) = self.position(removed) {
                    self.keys.remove(at);
                }
            } else if key == "console" || key == "talos.platform" {
                match replaced.iter_mut().find(|(name, _)| name == key) {
                    Some((_, values)) => values.push(value.to_string()),
                    None => replaced.push((key.to_string(), vec![value.to_string()])),
                }
                let values = replaced
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, values)| values.clone())
                    .unwrap_or_default();
                self.set(key, values);
            } else {
                self.append(key, value);
            }
        }
    }

    pub fn render(&self) -> String {
        let mut words = Vec::new();
        for (key, values) in &self.keys {
            for value in values {
                if value.is_empty() {
                    words.push(key.clone());
                } else {
                    words.push(format!("{key}={value}"));
                }
            }
        }
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_append_and_render() {
        let mut cmdline = Cmdline::default();
        cmdline.append("talos.platform", "metal");
        cmdline.set_all("console=ttyS0 console=tty0");
        cmdline.append_all("slab_nomerge= pti=on");
        assert_eq!(
            cmdline.render(),
            "talos.platform=metal console=ttyS0 console=tty0 slab_nomerge pti=on"
        );
        cmdline.merge_extra(&[
            "console=ttyS1".into(),
            "pti=on".into(),
            "-slab_nomerge".into(),
            "nolapic".into(),
            "console=tty2".into(),
            "a=b=c".into(),
        ]);
        assert_eq!(
            cmdline.render(),
            "talos.platform=metal console=ttyS1 console=tty2 pti=on pti=on nolapic a=b=c"
        );
        cmdline.merge_extra(&["-pti=on".into(), "-missing".into()]);
        assert_eq!(
            cmdline.render(),
            "talos.platform=metal console=ttyS1 console=tty2 nolapic a=b=c"
        );
    }
}
