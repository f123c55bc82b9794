//! Splits a Comware command file into lines of tokens with 1-based line/column positions,
//! dropping CLI prompts (`[Sysname]`, `<Sysname>`) pasted from a terminal session.

/// One word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The word; a double-quoted word is given without its quotes.
    pub text: String,
    /// 1-based column (in characters) where the word starts.
    pub col: usize,
}

/// One meaningful (non-blank) line.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// 1-based line number.
    pub no: usize,
    /// Whether the command was indented (a sub-view line in `display current-configuration`).
    pub indented: bool,
    /// The words; never empty.
    pub tokens: Vec<Token>,
    /// Column just past the end of the line, for "expected more" errors.
    pub end_col: usize,
}

impl Line {
    /// The text of word `i`, or "" past the end.
    pub fn word(&self, i: usize) -> &str {
        self.tokens.get(i).map_or("", |t| t.text.as_str())
    }

    /// Column of word `i`, or the end of the line past the end.
    pub fn col(&self, i: usize) -> usize {
        self.tokens.get(i).map_or(self.end_col, |t| t.col)
    }

    /// The line as written (words joined by one space), for messages.
    pub fn text(&self) -> String {
        let words: Vec<&str> = self.tokens.iter().map(|t| t.text.as_str()).collect();
        words.join(" ")
    }
}

/// Split `text` into meaningful lines. Blank lines are dropped; `#` separator lines are kept
/// (as a line whose only word starts with `#`) because they close sub-views.
pub(crate) fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let chars: Vec<char> = raw.chars().collect();
        let mut start = chars.iter().take_while(|c| c.is_whitespace()).count();
        let indented = start > 0;
        if let Some(skip) = prompt_len(&chars[start..]) {
            start += skip;
            start += chars[start..]
                .iter()
                .take_while(|c| c.is_whitespace())
                .count();
        }
        let tokens = split_words(&chars, start);
        if tokens.is_empty() {
            continue;
        }
        out.push(Line {
            no: index + 1,
            indented,
            tokens,
            end_col: chars.len() + 1,
        });
    }
    out
}

/// Length of a leading CLI prompt such as `[Sysname-Vlan-interface2]` or `<Sysname>` that is
/// followed by a command (a lone `[table]` is not a prompt).
fn prompt_len(chars: &[char]) -> Option<usize> {
    let close = match chars.first()? {
        '[' => ']',
        '<' => '>',
        _ => return None,
    };
    let end = chars.iter().position(|&c| c == close)?;
    if end < 2 || chars[1..end].iter().any(|c| c.is_whitespace()) {
        return None;
    }
    let rest = &chars[end + 1..];
    let has_command =
        rest.first().is_some_and(|c| c.is_whitespace()) && rest.iter().any(|c| !c.is_whitespace());
    has_command.then_some(end + 1)
}

/// Whitespace-separated words from `start`; `"..."` is one word (quotes removed).
fn split_words(chars: &[char], start: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = start;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let col = i + 1;
        let mut word = String::new();
        if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                word.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                word.push(chars[i]);
                i += 1;
            }
        }
        out.push(Token { text: word, col });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_columns_prompts_and_quotes() {
        let ls = lines(
            "\n[Sysname] ntp-service  unicast-server 1.0.1.11\r\n interface Vlan-interface2\n\
             [service]\nkey \"a b\"\n<R1> system-view\n",
        );
        assert_eq!(ls.len(), 5);
        assert_eq!(ls[0].no, 2);
        assert_eq!(ls[0].word(1), "unicast-server");
        assert_eq!(ls[0].col(1), 24);
        assert_eq!(ls[0].col(2), 39);
        assert!(!ls[0].indented);
        assert!(ls[1].indented);
        assert_eq!(ls[2].word(0), "[service]");
        assert_eq!(ls[3].word(1), "a b");
        assert_eq!(ls[4].word(0), "system-view");
        assert_eq!(ls[4].col(0), 6);
        assert_eq!(ls[0].col(9), ls[0].end_col);
    }
}
