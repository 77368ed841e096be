//! Text to `Scenario`: tokenizing with columns, one parser per directive, and errors
//! that show the line with a caret under the culprit.

use super::{Expectation, Scenario, Step, StepKind, SwarmExpect};
use crate::time::Duration;
use crate::underlay::{parse_cidr, LinkParams, PortRule, Proto};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// A broken scenario line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// How many columns the culprit spans.
    pub width: usize,
    /// What was expected, and what was found.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// The line as written.
    pub source: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.line.to_string();
        let pad = " ".repeat(n.len());
        writeln!(
            f,
            "error: {}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{n} | {}", self.source)?;
        writeln!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.col.saturating_sub(1)),
            "^".repeat(self.width.max(1))
        )?;
        write!(f, "{pad} = hint: {}", self.hint)
    }
}

impl ParseError {
    /// The same report, as a warning.
    pub fn as_warning(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix("error:") {
            Some(rest) => format!("warning:{rest}"),
            None => text,
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    col: usize,
    width: usize,
    quoted: bool,
}

struct Line<'a> {
    file: &'a str,
    number: usize,
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, ParseError>;

/// Split a line into words, honouring "double" and 'single' quotes; `#` outside quotes
/// starts a comment. Columns count characters from 1. Also returns the line's text
/// before any comment, trimmed.
fn tokenize(file: &str, number: usize, source: &str) -> PResult<(Vec<Token>, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            let text: String = chars[..i].iter().collect();
            return Ok((tokens, text.trim().to_string()));
        }
        let start = i;
        let mut text = String::new();
        let mut quoted = false;
        while i < chars.len() && !chars[i].is_whitespace() {
            let c = chars[i];
            if c == '"' || c == '\'' {
                quoted = true;
                let quote = c;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ParseError {
                                file: file.to_string(),
                                line: number,
                                col: start + 1,
                                width: chars.len() - start,
                                message: format!("expected a closing {quote}, found the end of the line"),
                                hint: format!("close the quoted text with {quote}; write \\{quote} for a literal {quote}"),
                                source: source.to_string(),
                            })
                        }
                        // As in a shell: in double quotes a backslash escapes only
                        // `"`, `\`, `$` and `` ` ``; before anything else it stays, so
                        // `"{{.Name}}\t{{.Image}}"` reaches Docker's `--format` whole.
                        Some('\\')
                            if quote == '"'
                                && matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) =>
                        {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
            } else {
                text.push(c);
                i += 1;
            }
        }
        tokens.push(Token {
            text,
            col: start + 1,
            width: i - start,
            quoted,
        });
    }
    Ok((tokens, source.trim().to_string()))
}

impl<'a> Line<'a> {
    fn error_at(&self, col: usize, width: usize, message: String, hint: &str) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: self.number,
            col,
            width,
            message,
            hint: hint.to_string(),
            source: self.source.to_string(),
        }
    }

    /// The token as a duration; a well-formed one too long for the lab's clock is
    /// refused with the limit.
    fn duration(&self, tok: &Token) -> PResult<Duration> {
        if let Some(d) = parse_duration(&tok.text) {
            return Ok(d);
        }
        let digits = tok
            .text
            .trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == 'µ');
        let unit = &tok.text[digits.len()..];
        let well_formed = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && ["ns", "us", "µs", "ms", "s", "m", "h"].contains(&unit);
        if well_formed {
            return Err(self.error(
                tok,
                "a duration of at most 5124095h",
                "the lab's clock counts nanoseconds in 64 bits: about 584 years",
            ));
        }
        Err(self.error(tok, "a duration", DURATION_HINT))
    }

    fn error(&self, tok: &Token, expected: &str, hint: &str) -> ParseError {
        self.error_at(
            tok.col,
            tok.width,
            format!("expected {expected}, found \"{}\"", tok.text),
            hint,
        )
    }

    fn end_col(&self) -> usize {
        self.tokens
            .last()
            .map(|t| t.col + t.width)
            .unwrap_or(self.source.chars().count() + 1)
    }

    /// The next token, or an error naming what was expected at the end of the line.
    fn next(&mut self, expected: &str, hint: &str) -> PResult<Token> {
        match self.tokens.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(self.error_at(
                self.end_col(),
                1,
                format!("expected {expected}, found the end of the line"),
                hint,
            )),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn done(&self, hint: &str) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.error(t, "the end of the line", hint)),
        }
    }

    fn name(&mut self, what: &str) -> PResult<Token> {
        let t = self.next(what, "names are letters, digits, '-', '_' and '.'")?;
        if valid_name(&t.text) {
            Ok(t)
        } else {
            Err(self.error(
                &t,
                what,
                "names are letters, digits, '-', '_' and '.', starting with a letter or digit",
            ))
        }
    }

    /// `key=value` options; returns them with their tokens, refusing unknown keys.
    fn options(&mut self, allowed: &[&str]) -> PResult<Vec<(String, Token)>> {
        let mut out: Vec<(String, Token)> = Vec::new();
        while let Some(t) = self.peek().cloned() {
            self.pos += 1;
            let Some((k, v)) = t.text.split_once('=') else {
                return Err(self.error(
                    &t,
                    &format!("an option {}", list_options(allowed)),
                    "options are written key=value, with no spaces around '='",
                ));
            };
            if !allowed.contains(&k) {
                return Err(self.error_at(
                    t.col,
                    k.chars().count(),
                    format!(
                        "expected an option {}, found \"{k}\"",
                        list_options(allowed)
                    ),
                    "check the spelling of the option",
                ));
            }
            if out.iter().any(|(seen, _)| seen == k) {
                return Err(self.error_at(
                    t.col,
                    t.width,
                    format!("expected each option once, found \"{k}\" again"),
                    "remove the repeated option",
                ));
            }
            let offset = k.chars().count() + 1;
            out.push((
                k.to_string(),
                Token {
                    text: v.to_string(),
                    col: t.col + offset,
                    width: t.width.saturating_sub(offset).max(1),
                    quoted: t.quoted,
                },
            ));
        }
        Ok(out)
    }
}

fn list_options(allowed: &[&str]) -> String {
    let names: Vec<String> = allowed.iter().map(|a| format!("{a}=")).collect();
    format!("({})", names.join(", "))
}

/// Builds a node expectation from (host, value).
type MakeExpect = fn(String, String) -> SwarmExpect;

fn valid_var(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables a word refers to (`$VAR` or `${VAR}`), with their byte offsets.
pub(crate) fn var_refs(word: &str) -> Vec<(usize, String)> {
    let b = word.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            let (start, braced) = if b[i + 1] == b'{' {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start && (!braced || b.get(j) == Some(&b'}')) {
                out.push((i, word[start..j].to_string()));
                i = if braced { j + 1 } else { j };
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Expand `$VAR` and `${VAR}` in a word.
pub fn expand_vars(word: &str, vars: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (at, name) in var_refs(word) {
        out.push_str(&word[last..at]);
        out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
        let braced = word[at + 1..].starts_with('{');
        last = at + 1 + name.len() + if braced { 2 } else { 0 };
    }
    out.push_str(&word[last..]);
    out
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const DURATION_HINT: &str =
    "write a number and a unit: ns, us, ms, s, m or h (e.g. 2ms, 1.5s, 30s)";

/// `2ms`, `1.5s`, `100us`, `1m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let scale: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ns = int.checked_mul(scale)?;
    let mut place = scale;
    for d in frac.chars() {
        place /= 10;
        ns = ns.checked_add(u64::from(d.to_digit(10)?) * place)?;
    }
    Some(Duration(ns))
}

fn parse_percent(s: &str) -> Option<f64> {
    let v: f64 = s.strip_suffix('%')?.parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v / 100.0)
}

fn parse_bandwidth(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    (v > 0.0).then_some((v * scale) as u64)
}

fn parse_rule(s: &str) -> Option<PortRule> {
    let (proto, port) = s.split_once('/')?;
    let proto = match proto {
        "udp" => Proto::Udp,
        "tcp" => Proto::Tcp,
        _ => return None,
    };
    let port: u16 = port.parse().ok()?;
    (port > 0).then_some(PortRule { proto, port })
}

const DIRECTIVES: &str = "host, hosts, link, overlay, gossip, sleep, crash, restart, partition, heal, block, unblock, expect, or HOST$ COMMAND";

/// The first words of the directives (a line that starts otherwise is `HOST$ COMMAND`).
pub const DIRECTIVE_NAMES: &[&str] = &[
    "host",
    "hosts",
    "link",
    "overlay",
    "gossip",
    "sleep",
    "crash",
    "restart",
    "partition",
    "heal",
    "block",
    "unblock",
    "expect",
];

const RANGE_HINT: &str = "a host list is names separated by commas, or a range like n[1-100]";

/// Expand `n[1-3]` into n1, n2, n3; a plain valid name into itself; `None` otherwise.
pub fn expand_range(s: &str) -> Option<Vec<String>> {
    if let Some(open) = s.find('[') {
        let (prefix, rest) = s.split_at(open);
        let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
        let (a, b) = inner.split_once('-')?;
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if prefix.is_empty() || a > b || b - a >= 100_000 || !valid_name(&format!("{prefix}{a}")) {
            return None;
        }
        return Some((a..=b).map(|i| format!("{prefix}{i}")).collect());
    }
    valid_name(s).then(|| vec![s.to_string()])
}

/// Whether a host's command line needs the shell: an operator outside quotes, a
/// here-document, or a program only the shell has.
fn needs_shell(raw: &str, argv: &[String]) -> bool {
    let builtin = argv
        .first()
        .is_some_and(|p| crate::sh::BUILTINS.contains(&p.as_str()));
    builtin
        || heredoc_opener(raw).is_some()
        || brush_parser::tokenize_str(raw).is_ok_and(|tokens| {
            tokens
                .iter()
                .any(|t| matches!(t, brush_parser::Token::Operator(op, _) if op != "\n"))
        })
}

/// A here-document opened on this line: its terminator, whether `<<-` strips tabs, and
/// the column of `<<`. (brush-parser refuses a line whose here-document has not ended
/// yet, so the opener is found here: the first `<<` outside quotes.)
fn heredoc_opener(source: &str) -> Option<(String, bool, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let (mut single, mut double) = (false, false);
    let mut k = 0;
    while k < chars.len() {
        match chars[k] {
            '\\' if !single => k += 1,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (k == 0 || chars[k - 1].is_whitespace()) => return None,
            '<' if !single && !double && chars.get(k + 1) == Some(&'<') => {
                let col = k + 1;
                let mut j = k + 2;
                let strip = chars.get(j) == Some(&'-');
                if strip {
                    j += 1;
                }
                while chars.get(j).is_some_and(|c| *c == ' ') {
                    j += 1;
                }
                let word: String = chars[j..]
                    .iter()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '&' | '|' | '<' | '>'))
                    .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                    .collect();
                return (!word.is_empty()).then_some((word, strip, col));
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Whether `s` is a well-formed range `p[A-B]` of more hosts than one range may hold.
fn range_too_long(s: &str) -> bool {
    let Some((_, rest)) = s.split_once('[') else {
        return false;
    };
    let Some((a, b)) = rest.strip_suffix(']').and_then(|r| r.split_once('-')) else {
        return false;
    };
    matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if b >= a && b - a >= 100_000)
}

/// A comma-separated list whose items may be ranges.
pub fn expand_list(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        out.extend(expand_range(part)?);
    }
    Some(out)
}

/// Parse a scenario. Names are checked across lines by `check` afterwards.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ParseError> {
    // A byte-order mark, as some Windows editors write, is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut steps = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let source = lines[i];
        let (tokens, text) = tokenize(file, i + 1, source)?;
        if tokens.is_empty() {
            i += 1;
            continue;
        }
        let mut line = Line {
            file,
            number: i + 1,
            source,
            tokens,
            pos: 0,
        };
        let mut kind = parse_directive(&mut line)?;
        let first = i;
        // A here-document: its lines, up to its terminator, are the command's.
        if let StepKind::Command {
            script: Some(script),
            ..
        } = &mut kind
        {
            if let Some((word, strip_tabs, col)) = heredoc_opener(source) {
                loop {
                    i += 1;
                    let Some(body) = lines.get(i) else {
                        return Err(line.error_at(
                            col,
                            2,
                            format!(
                                "expected the here-document's terminator, a line \"{word}\", found the end of the file"
                            ),
                            &format!("end the here-document with a line holding only {word}"),
                        ));
                    };
                    script.push('\n');
                    script.push_str(body);
                    let end = if strip_tabs {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if end == word {
                        break;
                    }
                }
            }
        }
        steps.push(Step {
            line: first + 1,
            text,
            kind,
        });
        i += 1;
    }
    let scenario = Scenario {
        file: file.to_string(),
        steps,
    };
    check(&scenario, text)?;
    Ok(scenario)
}

fn parse_directive(l: &mut Line) -> PResult<StepKind> {
    let head = l.next("a directive", DIRECTIVES)?;
    if let Some(host) = head.text.strip_suffix('$') {
        if head.quoted || !valid_name(host) {
            return Err(l.error(
                &head,
                "a host name before '$'",
                "write HOST$ COMMAND, e.g. node1$ docker ps",
            ));
        }
        let mut argv: Vec<String> = l.tokens[l.pos..].iter().map(|t| t.text.clone()).collect();
        if argv.is_empty() {
            return Err(l.error_at(
                l.end_col(),
                1,
                "expected a command after the prompt, found the end of the line".into(),
                "write HOST$ COMMAND, e.g. node1$ docker ps",
            ));
        }
        // `VAR=$(command ...)`: the command's output goes into VAR.
        let mut assign = None;
        let split = argv[0]
            .split_once("=$(")
            .map(|(v, f)| (v.to_string(), f.to_string()));
        if let Some((var, first)) = split {
            let first_tok = l.tokens[l.pos].clone();
            if !valid_var(&var) {
                return Err(l.error(
                    &first_tok,
                    "a variable name (letters, digits, _) before =$(",
                    "write HOST$ TOKEN=$(docker swarm join-token -q worker)",
                ));
            }
            let last = argv.len() - 1;
            let Some(stripped) = argv[last].strip_suffix(')') else {
                return Err(l.error_at(
                    l.end_col(),
                    1,
                    "expected ')' closing $( at the end of the line".into(),
                    "write HOST$ TOKEN=$(docker swarm join-token -q worker)",
                ));
            };
            argv[last] = stripped.to_string();
            argv[0] = first;
            // `$(cmd ...)` leaves an empty word only where the parentheses were.
            if argv.last().is_some_and(String::is_empty) {
                argv.pop();
            }
            if argv.first().is_some_and(String::is_empty) {
                argv.remove(0);
            }
            if argv.is_empty() {
                return Err(l.error(
                    &first_tok,
                    "a command inside $( )",
                    "write HOST$ TOKEN=$(docker swarm join-token -q worker)",
                ));
            }
            assign = Some(var);
        }
        // The command as written, for the shell when it needs one.
        let start = l.tokens[l.pos].col;
        let raw: String = l.source.chars().skip(start - 1).collect();
        let script = (assign.is_none() && needs_shell(&raw, &argv)).then_some(raw);
        return Ok(StepKind::Command {
            host: host.to_string(),
            argv,
            assign,
            script,
        });
    }
    match head.text.as_str() {
        "host" => {
            let name = l.name("a host name")?;
            let ip_tok = l.next("an IPv4 address", "e.g. host node1 192.168.1.11")?;
            let ip: Ipv4Addr = ip_tok
                .text
                .parse()
                .map_err(|_| l.error(&ip_tok, "an IPv4 address", "e.g. host node1 192.168.1.11"))?;
            let mut mtu = 1500;
            for (k, v) in l.options(&["mtu"])? {
                debug_assert_eq!(k, "mtu");
                mtu = v
                    .text
                    .parse()
                    .ok()
                    .filter(|m| (576..=9216).contains(m))
                    .ok_or_else(|| {
                        l.error(
                            &v,
                            "an MTU between 576 and 9216",
                            "Ethernet's default is 1500; jumbo frames go to 9000",
                        )
                    })?;
            }
            Ok(StepKind::Host {
                name: name.text,
                ip,
                mtu,
            })
        }
        "hosts" => {
            let hint = "e.g. hosts n[1-100] 10.2.0.0/16";
            let names_tok = l.next("a host range", hint)?;
            let names = expand_range(&names_tok.text)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    if range_too_long(&names_tok.text) {
                        l.error(
                            &names_tok,
                            "a host range of at most 100000 hosts",
                            "swarmlab simulates up to 100000 hosts in one range",
                        )
                    } else {
                        l.error(&names_tok, "a host range like n[1-100]", hint)
                    }
                })?;
            let block_tok = l.next("an address block in CIDR form", hint)?;
            let (base, prefix) = parse_cidr(&block_tok.text)
                .ok_or_else(|| l.error(&block_tok, "an address block in CIDR form", hint))?;
            let size = 1u64 << (32 - u32::from(prefix));
            if names.len() as u64 > size.saturating_sub(2) {
                return Err(l.error(
                    &block_tok,
                    &format!("a block with room for {} hosts", names.len()),
                    "use a wider block, e.g. /16 holds 65534 hosts",
                ));
            }
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            let network = u32::from(base) & mask;
            let ips = (0..names.len() as u32)
                .map(|i| Ipv4Addr::from(network + 1 + i))
                .collect();
            let mut mtu = 1500;
            for (_, v) in l.options(&["mtu"])? {
                mtu = v
                    .text
                    .parse()
                    .ok()
                    .filter(|m| (576..=9216).contains(m))
                    .ok_or_else(|| {
                        l.error(
                            &v,
                            "an MTU between 576 and 9216",
                            "Ethernet's default is 1500",
                        )
                    })?;
            }
            Ok(StepKind::Hosts { names, ips, mtu })
        }
        "gossip" => {
            let hint = "write gossip HOSTS join SEEDS (e.g. gossip n[2-10] join n1), or gossip HOSTS formed";
            let hosts_tok = l.next("a host list", hint)?;
            let hosts = expand_list(&hosts_tok.text)
                .ok_or_else(|| l.error(&hosts_tok, "a host list", RANGE_HINT))?;
            let verb = l.next("join or formed", hint)?;
            if verb.text == "formed" {
                l.done(hint)?;
                return Ok(StepKind::GossipFormed { hosts });
            }
            if verb.text != "join" {
                return Err(l.error(&verb, "join or formed", hint));
            }
            let seeds_tok = l.next("a host list", hint)?;
            let seeds = expand_list(&seeds_tok.text)
                .ok_or_else(|| l.error(&seeds_tok, "a host list", RANGE_HINT))?;
            l.done(hint)?;
            Ok(StepKind::GossipJoin { hosts, seeds })
        }
        "link" => {
            let a = l.name("a host name")?;
            let b = l.name("a second host name")?;
            let mut params = LinkParams::default();
            for (k, v) in l.options(&["latency", "jitter", "loss", "bandwidth"])? {
                match k.as_str() {
                    "latency" => params.latency = l.duration(&v)?,
                    "jitter" => params.jitter = l.duration(&v)?,
                    "loss" => {
                        params.loss = parse_percent(&v.text).ok_or_else(|| {
                            l.error(
                                &v,
                                "a percentage from 0% to 100%",
                                "e.g. loss=1% or loss=0.5%",
                            )
                        })?
                    }
                    _ => {
                        params.bandwidth = Some(parse_bandwidth(&v.text).ok_or_else(|| {
                            l.error(
                                &v,
                                "a bandwidth",
                                "e.g. bandwidth=100mbit (units: kbit, mbit, gbit)",
                            )
                        })?)
                    }
                }
            }
            Ok(StepKind::Link {
                a: a.text,
                b: b.text,
                params,
            })
        }
        "overlay" => {
            let name = l.name("a network name")?;
            let opts = l.options(&["vni", "subnet", "hosts"])?;
            let get = |key: &str| opts.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            let hint = "e.g. overlay demo vni=4097 subnet=10.0.1.0/24 hosts=node1,node2";
            let missing = |what: &str| {
                l.error_at(
                    l.end_col(),
                    1,
                    format!("expected {what}=, found the end of the line"),
                    hint,
                )
            };
            let vni_tok = get("vni").ok_or_else(|| missing("vni"))?;
            let vni: u32 = vni_tok
                .text
                .parse()
                .ok()
                .filter(|v| (1..=vxlan::Vni::MAX).contains(v))
                .ok_or_else(|| {
                    l.error(
                        &vni_tok,
                        "a VNI from 1 to 16777215",
                        "Docker gives overlays VNIs from 4096 up",
                    )
                })?;
            let sub_tok = get("subnet").ok_or_else(|| missing("subnet"))?;
            let (subnet, prefix) = parse_cidr(&sub_tok.text).ok_or_else(|| {
                l.error(
                    &sub_tok,
                    "a subnet in CIDR form, /30 or wider",
                    "e.g. subnet=10.0.1.0/24",
                )
            })?;
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            let network = Ipv4Addr::from(u32::from(subnet) & mask);
            if network != subnet {
                return Err(l.error(
                    &sub_tok,
                    "a network address (host bits zero)",
                    &format!("the network of that address is {network}/{prefix}"),
                ));
            }
            let hosts_tok = get("hosts").ok_or_else(|| missing("hosts"))?;
            let hosts: Vec<String> = hosts_tok.text.split(',').map(str::to_string).collect();
            if hosts.iter().any(|h| !valid_name(h)) {
                return Err(l.error(
                    &hosts_tok,
                    "a comma-separated list of host names",
                    "e.g. hosts=node1,node2 (no spaces)",
                ));
            }
            Ok(StepKind::Overlay {
                name: name.text,
                vni,
                subnet,
                prefix,
                hosts,
            })
        }
        "sleep" => {
            let t = l.next("a duration", DURATION_HINT)?;
            let d = l.duration(&t)?;
            l.done("sleep takes one duration")?;
            Ok(StepKind::Sleep(d))
        }
        "crash" | "restart" => {
            let h = l.name("a host name")?;
            l.done(&format!("{} takes one host name", head.text))?;
            Ok(if head.text == "crash" {
                StepKind::Crash(h.text)
            } else {
                StepKind::Restart(h.text)
            })
        }
        "heal" => {
            l.done("heal takes no arguments: it removes every partition")?;
            Ok(StepKind::Heal)
        }
        "partition" => {
            let hint = "write partition A,B | C (both ways) or partition A,B -> C (one way)";
            let left = l.next("a list of host names", hint)?;
            let sep = l.next("'|' or '->'", hint)?;
            let one_way = match sep.text.as_str() {
                "|" => false,
                "->" => true,
                _ => return Err(l.error(&sep, "'|' or '->'", hint)),
            };
            let right = l.next("a list of host names", hint)?;
            l.done(hint)?;
            let split = |t: &Token| -> PResult<Vec<String>> {
                let v: Vec<String> = t.text.split(',').map(str::to_string).collect();
                if v.iter().all(|h| valid_name(h)) {
                    Ok(v)
                } else {
                    Err(l.error(t, "a comma-separated list of host names", hint))
                }
            };
            Ok(StepKind::Partition {
                from: split(&left)?,
                to: split(&right)?,
                one_way,
            })
        }
        "block" | "unblock" => {
            let host = l.name("a host name")?;
            let hint =
                "write PROTO/PORT, e.g. udp/4789 (VXLAN), udp/7946 (gossip) or tcp/2377 (managers)";
            let r = l.next("a protocol and port", hint)?;
            let rule =
                parse_rule(&r.text).ok_or_else(|| l.error(&r, "a protocol and port", hint))?;
            l.done(hint)?;
            Ok(StepKind::Block {
                host: host.text,
                rule,
                block: head.text == "block",
            })
        }
        "expect" => parse_expect(l),
        _ => Err(l.error(
            &head,
            "a directive",
            &format!("directives are {DIRECTIVES}"),
        )),
    }
}

fn ok_or_fails(l: &mut Line) -> PResult<bool> {
    let v = l.next("ok or fails", "end the expectation with ok or fails")?;
    match v.text.as_str() {
        "ok" => Ok(true),
        "fails" => Ok(false),
        _ => Err(l.error(&v, "ok or fails", "end the expectation with ok or fails")),
    }
}

/// `HOST:PORT` with a valid name and a non-zero port.
fn host_port(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse::<u16>().ok().filter(|p| *p > 0)?;
    valid_name(h).then(|| (h.to_string(), port))
}

fn parse_expect(l: &mut Line) -> PResult<StepKind> {
    const HINT: &str = "expectations are: expect output contains \"TEXT\", expect error contains \"TEXT\", expect exit N, expect file C PATH contains \"TEXT\", expect image H NAME present|absent, expect ping C1 C2 ok|fails, expect member H1 sees H2 alive|suspect|dead|left, expect members H count N, expect node H status|availability|manager VALUE, expect service S running N, expect service S on H1,H2, expect quorum ok|lost, expect leader H, expect http H:PORT ok|fails, expect reach C1 C2:PORT ok|fails, expect resolve C NAME -> N addresses, expect spread H:PORT over S [N requests], each with an optional [within DURATION]";
    const KINDS: &str =
        "output, error, exit, file, image, ping, member, members, node, service, quorum, leader, http, reach, resolve or spread";
    let kind = l.next(KINDS, HINT)?;
    let what = match kind.text.as_str() {
        "output" | "error" => {
            let c = l.next("contains", HINT)?;
            if c.text != "contains" {
                return Err(l.error(&c, "contains", HINT));
            }
            let text = l.next(
                "a quoted text",
                "quote the text: expect output contains \"3 received\"",
            )?;
            if kind.text == "output" {
                Expectation::OutputContains(text.text)
            } else {
                Expectation::ErrorContains(text.text)
            }
        }
        "image" => {
            const IMAGE_HINT: &str = "e.g. expect image m2 myapp:1 absent";
            let host = l.name("a host name")?;
            let image = l.next("an image", IMAGE_HINT)?;
            let v = l.next("present or absent", IMAGE_HINT)?;
            let present = match v.text.as_str() {
                "present" => true,
                "absent" => false,
                _ => return Err(l.error(&v, "present or absent", IMAGE_HINT)),
            };
            Expectation::Image {
                host: host.text,
                image: image.text,
                present,
            }
        }
        "file" => {
            const FILE_HINT: &str =
                "e.g. expect file web.1 /usr/share/nginx/html/index.html contains \"v1\"";
            let target = l.next("a container, a task (SERVICE.SLOT) or a host", FILE_HINT)?;
            let path = l.next("an absolute path", FILE_HINT)?;
            if !path.text.starts_with('/') {
                return Err(l.error(&path, "an absolute path", FILE_HINT));
            }
            let c = l.next("contains", FILE_HINT)?;
            if c.text != "contains" {
                return Err(l.error(&c, "contains", FILE_HINT));
            }
            let text = l.next("a quoted text", FILE_HINT)?;
            Expectation::File {
                target: target.text,
                path: path.text,
                text: text.text,
            }
        }
        "exit" => {
            let n = l.next("an exit status", "e.g. expect exit 1")?;
            let code = n
                .text
                .parse::<i32>()
                .ok()
                .filter(|c| (0..=255).contains(c))
                .ok_or_else(|| l.error(&n, "an exit status from 0 to 255", "e.g. expect exit 1"))?;
            Expectation::Exit(code)
        }
        "ping" => {
            let from = l.name("a container name")?;
            let to = l.next("a container name or IP", HINT)?;
            let verdict = l.next("ok or fails", HINT)?;
            let ok = match verdict.text.as_str() {
                "ok" => true,
                "fails" => false,
                _ => return Err(l.error(&verdict, "ok or fails", HINT)),
            };
            Expectation::Ping {
                from: from.text,
                to: to.text,
                ok,
            }
        }
        "member" => {
            let viewer = l.name("a host name")?;
            let sees = l.next("sees", HINT)?;
            if sees.text != "sees" {
                return Err(l.error(&sees, "sees", HINT));
            }
            let member = l.name("a host name")?;
            let st = l.next("alive, suspect, dead or left", HINT)?;
            let state = match st.text.as_str() {
                "alive" => gossip::State::Alive,
                "suspect" => gossip::State::Suspect,
                "dead" => gossip::State::Dead,
                "left" => gossip::State::Left,
                _ => return Err(l.error(&st, "alive, suspect, dead or left", HINT)),
            };
            Expectation::Member {
                viewer: viewer.text,
                member: member.text,
                state,
            }
        }
        "members" => {
            let viewer = l.name("a host name")?;
            let c = l.next("count", HINT)?;
            if c.text != "count" {
                return Err(l.error(&c, "count", HINT));
            }
            let n = l.next("a number", HINT)?;
            let count = n
                .text
                .parse()
                .map_err(|_| l.error(&n, "a number", "e.g. expect members n1 count 3"))?;
            Expectation::MemberCount {
                viewer: viewer.text,
                count,
            }
        }
        "node" => {
            let node = l.name("a host name")?.text;
            let field = l.next("status, availability or manager", HINT)?;
            let (allowed, make): (&[&str], MakeExpect) = match field.text.as_str() {
                "status" => (&["ready", "down"], |node, status| SwarmExpect::NodeStatus {
                    node,
                    status,
                }),
                "availability" => (&["active", "pause", "drain"], |node, availability| {
                    SwarmExpect::NodeAvailability { node, availability }
                }),
                "manager" => (
                    &["leader", "reachable", "unreachable", "none"],
                    |node, status| SwarmExpect::NodeManager { node, status },
                ),
                _ => return Err(l.error(&field, "status, availability or manager", HINT)),
            };
            let v = l.next(&allowed.join(", "), HINT)?;
            if !allowed.contains(&v.text.as_str()) {
                return Err(l.error(&v, &allowed.join(", "), HINT));
            }
            Expectation::Swarm(make(node, v.text))
        }
        "service" => {
            let service = l.next("a service name", HINT)?.text;
            let verb = l.next("running or on", HINT)?;
            match verb.text.as_str() {
                "running" => {
                    let n = l.next("a number", HINT)?;
                    let count = n.text.parse().map_err(|_| {
                        l.error(&n, "a number", "e.g. expect service web running 3")
                    })?;
                    Expectation::Swarm(SwarmExpect::ServiceRunning { service, count })
                }
                "on" => {
                    let list = l.next("host names separated by commas", HINT)?;
                    let hosts = expand_list(&list.text).ok_or_else(|| {
                        l.error(
                            &list,
                            "host names separated by commas",
                            "e.g. expect service web on w1,w2",
                        )
                    })?;
                    Expectation::Swarm(SwarmExpect::ServiceOn { service, hosts })
                }
                _ => return Err(l.error(&verb, "running or on", HINT)),
            }
        }
        "quorum" => {
            let v = l.next("ok or lost", HINT)?;
            let ok = match v.text.as_str() {
                "ok" => true,
                "lost" => false,
                _ => return Err(l.error(&v, "ok or lost", HINT)),
            };
            Expectation::Swarm(SwarmExpect::Quorum { ok })
        }
        "leader" => {
            let host = l.name("a host name")?.text;
            Expectation::Swarm(SwarmExpect::Leader { host })
        }
        "http" | "spread" => {
            let target = l.next("HOST:PORT", HINT)?;
            let (host, port) = host_port(&target.text)
                .ok_or_else(|| l.error(&target, "HOST:PORT", "e.g. expect http node1:8080 ok"))?;
            if kind.text == "http" {
                let ok = ok_or_fails(l)?;
                Expectation::Http { host, port, ok }
            } else {
                let over = l.next("over", HINT)?;
                if over.text != "over" {
                    return Err(l.error(&over, "over", HINT));
                }
                let service = l.next("a service name", HINT)?.text;
                let mut requests = None;
                if l.peek().is_some_and(|t| t.text != "within") {
                    let n = l.next("a number of requests", HINT)?;
                    let count = n
                        .text
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n));
                    let Some(count) = count else {
                        return Err(l.error(
                            &n,
                            "a number of requests (1 to 10000)",
                            "e.g. expect spread node1:8080 over web 9 requests",
                        ));
                    };
                    let r = l.next("requests", HINT)?;
                    if r.text != "requests" {
                        return Err(l.error(
                            &r,
                            "requests",
                            "e.g. expect spread node1:8080 over web 9 requests",
                        ));
                    }
                    requests = Some(count);
                }
                Expectation::Spread {
                    host,
                    port,
                    service,
                    requests,
                }
            }
        }
        "reach" => {
            let from = l.next("a container name", HINT)?.text;
            let target = l.next("NAME:PORT", HINT)?;
            let Some((to, port)) = target
                .text
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(n, p)| !n.is_empty() && *p > 0)
            else {
                return Err(l.error(&target, "NAME:PORT", "e.g. expect reach client web:80 ok"));
            };
            let ok = ok_or_fails(l)?;
            Expectation::Reach { from, to, port, ok }
        }
        "resolve" => {
            let container = l.next("a container name", HINT)?.text;
            let name = l.next("a name to resolve", HINT)?.text;
            let arrow = l.next("->", HINT)?;
            if arrow.text != "->" {
                return Err(l.error(
                    &arrow,
                    "->",
                    "e.g. expect resolve client tasks.web -> 3 addresses",
                ));
            }
            let n = l.next("a number", HINT)?;
            let count = n.text.parse().map_err(|_| {
                l.error(
                    &n,
                    "a number",
                    "e.g. expect resolve client web -> 1 address",
                )
            })?;
            let a = l.next("addresses", HINT)?;
            if a.text != "addresses" && a.text != "address" {
                return Err(l.error(
                    &a,
                    "addresses",
                    "e.g. expect resolve client tasks.web -> 3 addresses",
                ));
            }
            Expectation::Resolve {
                container,
                name,
                count,
            }
        }
        _ => return Err(l.error(&kind, KINDS, HINT)),
    };
    let mut within = None;
    if let Some(t) = l.peek().cloned() {
        if t.text != "within" {
            return Err(l.error(&t, "'within DURATION' or the end of the line", HINT));
        }
        l.pos += 1;
        let d = l.next("a duration", DURATION_HINT)?;
        within = Some(l.duration(&d)?);
        l.done(HINT)?;
    }
    Ok(StepKind::Expect { what, within })
}

/// Cross-line checks: hosts declared once and before use, overlays on declared hosts,
/// expectations about output only after a command, pinged containers started earlier.
/// The command lines that will not run as written: a typo, a command Docker lacks, or
/// one swarmlab does not simulate (`swarmlab check` refuses them; `swarmlab run` warns).
/// A command followed by an expectation of its failure (`expect error ...` or `expect
/// exit N` with N > 0) is meant to fail, and is not judged.
pub fn check_commands(s: &Scenario, text: &str) -> Vec<ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        let StepKind::Command { argv, script, .. } = &step.kind else {
            continue;
        };
        let meant_to_fail = s.steps[i + 1..]
            .iter()
            .take_while(|n| matches!(n.kind, StepKind::Expect { .. }))
            .any(|n| {
                matches!(
                    &n.kind,
                    StepKind::Expect {
                        what: Expectation::ErrorContains(_),
                        ..
                    } | StepKind::Expect {
                        what: Expectation::Exit(1..),
                        ..
                    }
                )
            });
        if meant_to_fail {
            continue;
        }
        let checked = match script {
            Some(script) => crate::cli::support::check_script(script),
            None => crate::cli::support::check(argv),
        };
        if let Err(r) = checked {
            let source = lines.get(step.line - 1).copied().unwrap_or("");
            let col = locate(source, &r.word).unwrap_or(1);
            found.push(ParseError {
                file: s.file.clone(),
                line: step.line,
                col,
                width: r.word.chars().count(),
                message: r.message,
                hint: r.hint,
                source: source.to_string(),
            });
        }
    }
    found
}

fn check(s: &Scenario, text: &str) -> PResult<()> {
    let lines: Vec<&str> = text.lines().collect();
    let err = |step: &Step, needle: &str, message: String, hint: String| {
        let source = lines.get(step.line - 1).copied().unwrap_or("");
        let col = locate(source, needle).unwrap_or(1);
        ParseError {
            file: s.file.clone(),
            line: step.line,
            col,
            width: needle.chars().count(),
            message,
            hint,
            source: source.to_string(),
        }
    };
    // Declared hosts, in order (for hints) and as a set (for lookups in large labs).
    let mut hosts: Vec<String> = Vec::new();
    let mut host_set: BTreeSet<String> = BTreeSet::new();
    let mut ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut nets: BTreeSet<String> = BTreeSet::new();
    let mut vnis: BTreeSet<u32> = BTreeSet::new();
    let mut containers: BTreeSet<String> = BTreeSet::new();
    let mut had_command = false;
    let mut vars: BTreeSet<String> = BTreeSet::new();
    let known = |hosts: &[String]| {
        if hosts.is_empty() {
            "declare hosts first, e.g. host node1 192.168.1.11".to_string()
        } else if hosts.len() > 12 {
            format!(
                "hosts declared so far: {}, ... ({} in all)",
                hosts[..12].join(", "),
                hosts.len()
            )
        } else {
            format!("hosts declared so far: {}", hosts.join(", "))
        }
    };
    let need_host =
        |step: &Step, h: &str, hosts: &[String], set: &BTreeSet<String>| -> PResult<()> {
            if set.contains(h) {
                Ok(())
            } else {
                Err(err(
                    step,
                    h,
                    format!("expected a declared host, found \"{h}\""),
                    known(hosts),
                ))
            }
        };
    for step in &s.steps {
        match &step.kind {
            StepKind::Host { name, ip, .. } => {
                declare(&mut hosts, &mut host_set, &mut ips, name, *ip).map_err(
                    |(by_name, m, h)| {
                        let at = if by_name {
                            name.clone()
                        } else {
                            ip.to_string()
                        };
                        err(step, &at, m, h)
                    },
                )?;
            }
            StepKind::Hosts {
                names, ips: addrs, ..
            } => {
                for (name, ip) in names.iter().zip(addrs.iter().copied()) {
                    declare(&mut hosts, &mut host_set, &mut ips, name, ip)
                        .map_err(|(_, m, h)| err(step, "hosts", m, h))?;
                }
            }
            StepKind::GossipJoin { hosts: on, seeds } => {
                for h in on.iter().chain(seeds) {
                    need_host(step, h, &hosts, &host_set)?;
                }
            }
            StepKind::GossipFormed { hosts: on } => {
                for h in on {
                    need_host(step, h, &hosts, &host_set)?;
                }
            }
            StepKind::Link { a, b, .. } => {
                need_host(step, a, &hosts, &host_set)?;
                need_host(step, b, &hosts, &host_set)?;
                if a == b {
                    let mut e = err(
                        step,
                        b,
                        format!("expected a second, different host, found \"{b}\""),
                        "a link joins two hosts".into(),
                    );
                    // Point at the second name, not the first.
                    if let Some(col) = locate_nth(&e.source, b, 1) {
                        e.col = col;
                    }
                    return Err(e);
                }
            }
            StepKind::Overlay {
                name,
                vni,
                hosts: on,
                ..
            } => {
                for h in on {
                    need_host(step, h, &hosts, &host_set)?;
                }
                if !nets.insert(name.clone()) {
                    return Err(err(
                        step,
                        name,
                        format!("expected a new network name, found \"{name}\" again"),
                        "each overlay is declared once".into(),
                    ));
                }
                if !vnis.insert(*vni) {
                    return Err(err(
                        step,
                        &vni.to_string(),
                        format!("expected a free VNI, found {vni} already in use"),
                        "each overlay needs its own VNI".into(),
                    ));
                }
            }
            StepKind::Crash(h) | StepKind::Restart(h) => need_host(step, h, &hosts, &host_set)?,
            StepKind::Block { host, .. } => need_host(step, host, &hosts, &host_set)?,
            StepKind::Partition { from, to, .. } => {
                for h in from.iter().chain(to) {
                    need_host(step, h, &hosts, &host_set)?;
                }
                if let Some(h) = from.iter().find(|h| to.contains(h)) {
                    return Err(err(
                        step,
                        h,
                        format!("expected two disjoint sides, found \"{h}\" on both"),
                        "a host is on one side of a partition".into(),
                    ));
                }
            }
            StepKind::Command {
                host,
                argv,
                assign,
                script,
            } => {
                need_host(step, host, &hosts, &host_set)?;
                had_command = true;
                // A script's variables may be its own: the shell expands them.
                for a in argv.iter().filter(|_| script.is_none()) {
                    for (_, name) in var_refs(a) {
                        if !vars.contains(&name) {
                            let hint = if vars.is_empty() {
                                "set it first: HOST$ NAME=$(COMMAND ...)".to_string()
                            } else {
                                format!(
                                    "variables set so far: {}",
                                    vars.iter().cloned().collect::<Vec<_>>().join(", ")
                                )
                            };
                            return Err(err(
                                step,
                                &format!("${}", if a.contains("${") { format!("{{{name}}}") } else { name.clone() }),
                                format!("expected a variable set on an earlier line, found ${name} unset"),
                                hint,
                            ));
                        }
                    }
                }
                if let Some(v) = assign {
                    vars.insert(v.clone());
                }
                // Remember names given to containers, so expectations can be checked.
                if argv.first().map(String::as_str) == Some("docker")
                    && argv.get(1).map(String::as_str) == Some("run")
                {
                    if let Some(i) = argv.iter().position(|a| a == "--name") {
                        if let Some(n) = argv.get(i + 1) {
                            containers.insert(n.clone());
                        }
                    }
                    if let Some(n) = argv.iter().find_map(|a| a.strip_prefix("--name=")) {
                        containers.insert(n.to_string());
                    }
                }
            }
            StepKind::Expect { what, .. } => match what {
                Expectation::OutputContains(_)
                | Expectation::ErrorContains(_)
                | Expectation::Exit(_)
                    if !had_command =>
                {
                    return Err(err(
                        step,
                        "expect",
                        "expected a command before this expectation, found none".into(),
                        "expect output/error/exit is about the previous HOST$ COMMAND line".into(),
                    ));
                }
                Expectation::Member { viewer, member, .. } => {
                    need_host(step, viewer, &hosts, &host_set)?;
                    need_host(step, member, &hosts, &host_set)?;
                }
                Expectation::MemberCount { viewer, .. } => {
                    need_host(step, viewer, &hosts, &host_set)?
                }
                Expectation::Image { host, .. } => need_host(step, host, &hosts, &host_set)?,
                Expectation::Http { host, .. } | Expectation::Spread { host, .. } => {
                    need_host(step, host, &hosts, &host_set)?
                }
                Expectation::Swarm(
                    SwarmExpect::NodeStatus { node, .. }
                    | SwarmExpect::NodeAvailability { node, .. }
                    | SwarmExpect::NodeManager { node, .. }
                    | SwarmExpect::Leader { host: node },
                ) => need_host(step, node, &hosts, &host_set)?,
                Expectation::Swarm(SwarmExpect::ServiceOn { hosts: on, .. }) => {
                    for h in on {
                        need_host(step, h, &hosts, &host_set)?;
                    }
                }
                Expectation::Ping { from, to, .. } => {
                    for c in [from, to] {
                        if c.parse::<Ipv4Addr>().is_err() && !containers.contains(c) {
                            let names: Vec<&str> = containers.iter().map(String::as_str).collect();
                            let hint = if names.is_empty() {
                                "start containers first: HOST$ docker run -d --name NAME --network NET alpine".to_string()
                            } else {
                                format!("containers started so far: {}", names.join(", "))
                            };
                            return Err(err(
                                step,
                                c,
                                format!("expected a container started earlier, found \"{c}\""),
                                hint,
                            ));
                        }
                    }
                }
                _ => {}
            },
            StepKind::Sleep(_) | StepKind::Heal => {}
        }
    }
    Ok(())
}

/// Record a declared host, or say why it cannot be: (whether the name is at fault,
/// message, hint).
fn declare(
    hosts: &mut Vec<String>,
    host_set: &mut BTreeSet<String>,
    ips: &mut BTreeSet<Ipv4Addr>,
    name: &str,
    ip: Ipv4Addr,
) -> Result<(), (bool, String, String)> {
    if host_set.contains(name) {
        return Err((
            true,
            format!("expected a new host name, found \"{name}\" again"),
            "each host is declared once".into(),
        ));
    }
    if !ips.insert(ip) {
        return Err((
            false,
            format!("expected a free address, found {ip} already in use"),
            "give each host its own underlay IP".into(),
        ));
    }
    hosts.push(name.to_string());
    host_set.insert(name.to_string());
    Ok(())
}

/// The column of the `nth` (0-based) place where `needle` stands as a whole word, as
/// the value of a `key=value`, or as an element of a comma-separated list.
fn locate_nth(source: &str, needle: &str, nth: usize) -> Option<usize> {
    let (tokens, _) = tokenize("", 0, source).ok()?;
    let mut found = tokens.iter().flat_map(|t| {
        let (value, value_col) = match t.text.split_once('=') {
            Some((k, v)) if !t.quoted => (v, t.col + k.chars().count() + 1),
            _ => (t.text.as_str(), t.col),
        };
        let mut places = Vec::new();
        if t.text == needle {
            places.push(t.col);
        } else {
            let mut col = value_col;
            for part in value.split(',') {
                if part == needle {
                    places.push(col);
                }
                col += part.chars().count() + 1;
            }
        }
        places
    });
    found.nth(nth)
}

fn locate(source: &str, needle: &str) -> Option<usize> {
    locate_nth(source, needle, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> ParseError {
        parse("t.lab", text).unwrap_err()
    }

    #[test]
    fn backslashes_in_double_quotes_are_a_shell_s() {
        let words = |line: &str| -> Vec<String> {
            tokenize("t.lab", 1, line)
                .unwrap()
                .0
                .into_iter()
                .map(|t| t.text)
                .collect()
        };
        assert_eq!(
            words(r#"--format "table {{.Name}}\t{{.Image}}" 'a\tb'"#),
            ["--format", r"table {{.Name}}\t{{.Image}}", r"a\tb"]
        );
        assert_eq!(
            words(r#""say \"hi\"" "\$HOME" "a\\b""#),
            [r#"say "hi""#, "$HOME", r"a\b"]
        );
    }

    #[test]
    fn durations_take_decimals_and_units() {
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2ms"), Some(Duration::from_millis(2)));
        assert_eq!(parse_duration("100us"), Some(Duration::from_micros(100)));
        assert_eq!(parse_duration("2xs"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn limits_are_named_when_a_value_passes_them() {
        let e = error("host a 10.0.0.1\nsleep 100000000h\n");
        assert_eq!((e.line, e.col), (2, 7));
        assert!(
            e.message
                .contains("expected a duration of at most 5124095h"),
            "{}",
            e.message
        );
        let e = error("hosts n[1-100000000] 10.0.0.0/8\n");
        assert!(
            e.message
                .contains("expected a host range of at most 100000 hosts"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_duration_points_at_the_value() {
        let e = error("host a 10.0.0.1\nhost b 10.0.0.2\nlink a b latency=2xs\n");
        assert_eq!((e.line, e.col), (3, 18));
        assert!(
            e.message.contains("expected a duration, found \"2xs\""),
            "{}",
            e.message
        );
        assert!(e.hint.contains("ms"));
        let shown = e.to_string();
        assert!(shown.starts_with("error: t.lab:3:18:"), "{shown}");
        assert!(shown.contains("                 ^^^"), "{shown}");
    }

    #[test]
    fn unknown_directive_lists_the_known_ones() {
        let e = error("hots a 10.0.0.1\n");
        assert_eq!((e.line, e.col), (1, 1));
        assert!(e.hint.contains("host, hosts, link"), "{}", e.hint);
    }

    #[test]
    fn undeclared_host_is_named_with_the_declared_ones() {
        let e = error("host node1 10.0.0.1\nblock node2 udp/4789\n");
        assert_eq!((e.line, e.col), (2, 7));
        assert!(e.hint.contains("node1"), "{}", e.hint);
    }

    #[test]
    fn unclosed_quote_is_reported() {
        let e = error("host a 10.0.0.1\na$ docker ps\nexpect output contains \"oops\n");
        assert_eq!((e.line, e.col), (3, 24));
        assert!(e.message.contains("closing \""));
    }

    #[test]
    fn ping_expectation_needs_a_started_container() {
        let e = error("host a 10.0.0.1\nexpect ping c1 c2 ok\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("\"c1\""));
    }

    #[test]
    fn cross_line_errors_point_at_the_right_word() {
        let e = error("host a 10.0.0.1\nhost b 10.0.0.2\npartition a,b | c\n");
        assert_eq!((e.line, e.col), (3, 17));
        let e = error("host a 10.0.0.1\nlink a a\n");
        assert_eq!((e.line, e.col), (2, 8));
        let e = error("host h 10.0.0.1\noverlay n vni=4097 subnet=10.0.1.0/24 hosts=h,x\n");
        assert_eq!((e.line, e.col), (2, 47));
    }

    #[test]
    fn duplicate_hosts_and_addresses_are_refused_where_they_stand() {
        let e = error("host a 10.0.0.1\nhost a 10.0.0.2\n");
        assert_eq!((e.line, e.col), (2, 6));
        let e = error("host a 10.0.0.1\nhost b 10.0.0.1\n");
        assert_eq!((e.line, e.col), (2, 8));
        assert!(e.message.contains("already in use"));
        let e = error("host n1 10.0.0.1\nhosts n[1-3] 10.0.1.0/24\n");
        assert!(e.message.contains("\"n1\" again"), "{}", e.message);
    }

    #[test]
    fn subnet_with_host_bits_is_refused_with_its_network() {
        let e = error("host h 10.0.0.1\noverlay n vni=4097 subnet=10.0.1.200/24 hosts=h\n");
        assert!(e.hint.contains("10.0.1.0/24"), "{}", e.hint);
    }

    #[test]
    fn step_text_keeps_hashes_inside_quotes() {
        let s = parse(
            "t.lab",
            "host a 10.0.0.1\na$ docker ps\nexpect output contains \"x #y\" # note\n",
        )
        .unwrap();
        assert_eq!(s.steps[2].text, "expect output contains \"x #y\"");
    }

    #[test]
    fn comments_and_quotes_are_handled() {
        let s = parse(
            "t.lab",
            "# lab\nhost a 10.0.0.1 # first\na$ docker exec c1 sh -c \"echo '#1'\"\n",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 2);
        let StepKind::Command { argv, .. } = &s.steps[1].kind else {
            panic!()
        };
        assert_eq!(argv.last().unwrap(), "echo '#1'");
    }

    #[test]
    fn partitions_parse_both_ways_and_one_way() {
        let s = parse("t.lab", "host a 10.0.0.1\nhost b 10.0.0.2\nhost c 10.0.0.3\npartition a,b | c\npartition a -> b\n").unwrap();
        assert!(
            matches!(&s.steps[3].kind, StepKind::Partition { one_way: false, from, .. } if from.len() == 2)
        );
        assert!(matches!(
            &s.steps[4].kind,
            StepKind::Partition { one_way: true, .. }
        ));
    }
}
