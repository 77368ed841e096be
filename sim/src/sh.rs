//! A small POSIX shell over a `Fs`: what a lab types on a host (bash) and what runs in
//! alpine or busybox (`sh -c '...'`).
//!
//! brush-parser's tokenizer reads the script (words, operators, here-documents); this
//! module expands words (`$VAR`, `${VAR}`, `$?`, quotes, backslashes) and runs lists
//! (`;`, newlines, `&&`, `||`), pipelines (`|`), redirections (`>`, `>>`, `<`, `2>`,
//! `2>&1`, here-documents) and the built-in programs: `cat`, `echo`, `printf`, `ls`,
//! `mkdir`, `rm`, `cp`, `mv`, `touch`, `test`/`[`, `true`, `false`, `pwd`, `cd`,
//! `export`, `exit`, `head`, `wc`, `grep`, `sh -c`. Any other program is asked of the
//! caller (`External`): docker, curl, wget, ping...
//!
//! Not a full shell: no globbing, no field splitting of expansions, no functions, loops
//! or `if`; those lines say so as swarmlab's.

use crate::fs::{resolve, Entry, Fs, FsError};
use std::collections::BTreeMap;

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Io {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub code: i32,
}

impl Io {
    fn err(text: String, code: i32) -> Io {
        Io {
            stderr: text,
            code,
            ..Default::default()
        }
    }
}

/// Whose texts the errors take: GNU coreutils and bash on hosts, busybox in alpine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// bash and GNU coreutils (a Debian host).
    Gnu,
    /// busybox's `sh` and applets (alpine, busybox).
    Busybox,
}

/// A shell's state: its filesystem, working directory and variables.
#[derive(Clone, Debug)]
pub struct Sh {
    /// The filesystem it works on.
    pub fs: Fs,
    /// The working directory.
    pub cwd: String,
    /// Variables (exported or not: the programs here see them all).
    pub env: BTreeMap<String, String>,
    /// Error texts.
    pub flavor: Flavor,
    last: i32,
}

/// Programs the shell lacks, run by whoever hosts it.
pub trait External {
    /// Run `argv` with `stdin`; `None` when no program has that name.
    fn run(
        &mut self,
        sh: &mut Sh,
        argv: &[String],
        stdin: &str,
    ) -> impl std::future::Future<Output = Option<Io>>;
}

/// The programs this shell has.
pub const BUILTINS: &[&str] = &[
    "cat", "echo", "printf", "ls", "mkdir", "rm", "cp", "mv", "touch", "test", "[", "true",
    "false", "pwd", "cd", "export", "exit", "head", "wc", "grep", "sh",
];

#[derive(Debug, Default)]
struct Cmd {
    words: Vec<String>,
    /// (fd, path, append); fd 2 with path "&1" joins stderr to stdout.
    out: Vec<(u8, String, bool)>,
    input: Option<String>,
    heredoc: Option<(String, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Seq,
    And,
    Or,
}

/// A script: pipelines joined by `;`, `&&`, `||` (each with what joins it to the next).
type Script = Vec<(Vec<Cmd>, Conn)>;

fn parse(script: &str) -> Result<Script, String> {
    use brush_parser::Token;
    let tokens = brush_parser::tokenize_str(script).map_err(|e| e.to_string())?;
    let mut list: Script = Vec::new();
    let mut pipeline: Vec<Cmd> = Vec::new();
    let mut cmd = Cmd::default();
    let mut i = 0;
    let end_cmd = |pipeline: &mut Vec<Cmd>, cmd: &mut Cmd| {
        let c = std::mem::take(cmd);
        if !c.words.is_empty() || !c.out.is_empty() {
            pipeline.push(c);
        }
    };
    while i < tokens.len() {
        match &tokens[i] {
            Token::Word(w, _) => cmd.words.push(w.clone()),
            Token::Operator(op, loc) => {
                // `2>`: a word of digits right before the operator is its descriptor.
                let fd = match (cmd.words.last(), i.checked_sub(1).map(|k| &tokens[k])) {
                    (Some(last), Some(Token::Word(_, wl)))
                        if wl.end.index == loc.start.index
                            && !last.is_empty()
                            && last.bytes().all(|b| b.is_ascii_digit())
                            && matches!(op.as_str(), ">" | ">>" | ">&") =>
                    {
                        let fd = last.parse::<u8>().unwrap_or(1);
                        cmd.words.pop();
                        Some(fd)
                    }
                    _ => None,
                };
                let target = |k: usize| match tokens.get(k) {
                    Some(Token::Word(w, _)) => Ok(w.clone()),
                    _ => Err(format!("syntax error: a file name after `{op}`")),
                };
                match op.as_str() {
                    ">" | ">>" => {
                        cmd.out.push((fd.unwrap_or(1), target(i + 1)?, op == ">>"));
                        i += 1;
                    }
                    ">&" => {
                        let t = target(i + 1)?;
                        cmd.out.push((fd.unwrap_or(1), format!("&{t}"), false));
                        i += 1;
                    }
                    "<" => {
                        cmd.input = Some(target(i + 1)?);
                        i += 1;
                    }
                    "<<" | "<<-" => {
                        // The delimiter, the body, the delimiter again.
                        let delim = target(i + 1)?;
                        let body = match tokens.get(i + 2) {
                            Some(Token::Word(b, _)) => b.clone(),
                            _ => String::new(),
                        };
                        let quoted = delim.contains(['\'', '"', '\\']);
                        cmd.heredoc = Some((body, !quoted));
                        i += 3;
                    }
                    "|" => end_cmd(&mut pipeline, &mut cmd),
                    "&&" | "||" | ";" | "\n" => {
                        end_cmd(&mut pipeline, &mut cmd);
                        let conn = match op.as_str() {
                            "&&" => Conn::And,
                            "||" => Conn::Or,
                            _ => Conn::Seq,
                        };
                        if !pipeline.is_empty() {
                            list.push((std::mem::take(&mut pipeline), conn));
                        } else if conn != Conn::Seq {
                            return Err(format!("syntax error near unexpected token `{op}'"));
                        }
                    }
                    other => {
                        return Err(format!(
                            "swarmlab: the shell does not simulate `{other}` yet"
                        ))
                    }
                }
            }
        }
        i += 1;
    }
    end_cmd(&mut pipeline, &mut cmd);
    if !pipeline.is_empty() {
        list.push((pipeline, Conn::Seq));
    }
    Ok(list)
}

impl Sh {
    /// A shell on `fs`, in `cwd`.
    pub fn new(fs: Fs, cwd: &str, flavor: Flavor) -> Sh {
        Sh {
            fs,
            cwd: cwd.to_string(),
            env: BTreeMap::new(),
            flavor,
            last: 0,
        }
    }

    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::Gnu => "bash",
            Flavor::Busybox => "sh",
        }
    }

    /// A word with its quotes removed and its variables expanded.
    pub fn expand(&self, raw: &str) -> String {
        let mut out = String::new();
        let mut chars = raw.chars().peekable();
        let mut double = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' if !double => {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                        out.push(c);
                    }
                }
                '"' => double = !double,
                '\\' => match chars.next() {
                    Some(n) if !double || matches!(n, '$' | '"' | '\\' | '`') => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                },
                '$' => out.push_str(&self.variable(&mut chars)),
                c => out.push(c),
            }
        }
        out
    }

    /// The value after a `$` (the name read from `chars`).
    fn variable(&self, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
        let name: String = match chars.peek() {
            Some('{') => {
                chars.next();
                chars.by_ref().take_while(|c| *c != '}').collect()
            }
            Some('?') => {
                chars.next();
                return self.last.to_string();
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut n = String::new();
                while let Some(c) = chars
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                {
                    n.push(*c);
                    chars.next();
                }
                n
            }
            _ => return "$".into(),
        };
        self.env.get(&name).cloned().unwrap_or_default()
    }

    /// Expand a here-document's body (`$VAR`, `\$`), unless its delimiter was quoted.
    fn expand_body(&self, body: &str) -> String {
        let mut out = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('$' | '\\' | '`')) => {
                    out.extend(chars.next());
                }
                '$' => out.push_str(&self.variable(&mut chars)),
                c => out.push(c),
            }
        }
        out
    }

    fn path(&self, p: &str) -> String {
        resolve(&self.cwd, p)
    }

    /// Run a script with `stdin`.
    pub async fn run(&mut self, script: &str, stdin: &str, ext: &mut impl External) -> Io {
        let list = match parse(script) {
            Ok(l) => l,
            Err(e) if e.starts_with("swarmlab:") => return Io::err(format!("{e}\n"), 2),
            Err(e) => return Io::err(format!("{}: {e}\n", self.name()), 2),
        };
        let mut all = Io::default();
        let mut skip = false;
        for (pipeline, conn) in list {
            if !skip {
                let io = Box::pin(self.pipeline(pipeline, stdin, ext)).await;
                all.stdout.push_str(&io.stdout);
                all.stderr.push_str(&io.stderr);
                all.code = io.code;
                self.last = io.code;
                if self.env.contains_key("\0exit") {
                    self.env.remove("\0exit");
                    return all;
                }
            }
            skip = match conn {
                Conn::Seq => false,
                Conn::And => self.last != 0,
                Conn::Or => self.last == 0,
            };
        }
        all
    }

    async fn pipeline(&mut self, cmds: Vec<Cmd>, stdin: &str, ext: &mut impl External) -> Io {
        let mut input = stdin.to_string();
        let mut result = Io::default();
        let n = cmds.len();
        for (k, c) in cmds.into_iter().enumerate() {
            let io = self.command(c, &input, ext).await;
            result.stderr.push_str(&io.stderr);
            result.code = io.code;
            if k + 1 < n {
                input = io.stdout;
            } else {
                result.stdout = io.stdout;
            }
        }
        result
    }

    async fn command(&mut self, c: Cmd, stdin: &str, ext: &mut impl External) -> Io {
        let mut words: Vec<String> = c.words.iter().map(|w| self.expand(w)).collect();
        // Leading NAME=value words set variables.
        while let Some((k, v)) = words
            .first()
            .and_then(|w| w.split_once('='))
            .filter(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        {
            let (k, v) = (k.to_string(), v.to_string());
            self.env.insert(k, v);
            words.remove(0);
        }
        let input = match (&c.heredoc, &c.input) {
            (Some((body, true)), _) => self.expand_body(body),
            (Some((body, false)), _) => body.clone(),
            (None, Some(p)) => {
                let p = self.expand(p);
                match self.fs.read(&self.path(&p)) {
                    Ok(b) => String::from_utf8_lossy(b).into_owned(),
                    Err(e) => return Io::err(format!("{}: {p}: {e}\n", self.name()), 1),
                }
            }
            (None, None) => stdin.to_string(),
        };
        let mut io = if words.is_empty() {
            Io::default()
        } else {
            self.program(&words, &input, ext).await
        };
        // Redirections, in order: files are made even for empty output.
        for (fd, target, append) in &c.out {
            if target == "&1" && *fd == 2 {
                let err = std::mem::take(&mut io.stderr);
                io.stdout.push_str(&err);
                continue;
            }
            let target = self.expand(target);
            let text = if *fd == 2 {
                std::mem::take(&mut io.stderr)
            } else {
                std::mem::take(&mut io.stdout)
            };
            if target == "/dev/null" {
                continue;
            }
            let path = self.path(&target);
            let written = if *append {
                self.fs.append(&path, text.as_bytes())
            } else {
                self.fs.write(&path, text.into_bytes())
            };
            if let Err(e) = written {
                let msg = match (self.flavor, e) {
                    (Flavor::Busybox, FsError::NotFound) => {
                        format!("sh: can't create {target}: nonexistent directory\n")
                    }
                    (Flavor::Busybox, e) => format!("sh: can't create {target}: {e}\n"),
                    (Flavor::Gnu, e) => format!("bash: {target}: {e}\n"),
                };
                io.stderr.push_str(&msg);
                io.code = 1;
            }
        }
        io
    }

    async fn program(&mut self, argv: &[String], stdin: &str, ext: &mut impl External) -> Io {
        let prog = argv[0].rsplit('/').next().unwrap_or(&argv[0]).to_string();
        let args = &argv[1..];
        let ok = |s: String| Io {
            stdout: s,
            ..Default::default()
        };
        let busybox = self.flavor == Flavor::Busybox;
        match prog.as_str() {
            "true" | ":" => Io::default(),
            "false" => Io::err(String::new(), 1),
            "pwd" => ok(format!("{}\n", self.cwd)),
            "echo" => {
                let (newline, words) = match args.first().map(String::as_str) {
                    Some("-n") => (false, &args[1..]),
                    _ => (true, args),
                };
                ok(format!(
                    "{}{}",
                    words.join(" "),
                    if newline { "\n" } else { "" }
                ))
            }
            "printf" => match args.first() {
                Some(f) => ok(printf(f, &args[1..])),
                None => Io::err("printf: usage: printf format [arguments]\n".into(), 2),
            },
            "cd" => {
                let to = args.first().cloned().unwrap_or_else(|| "/root".into());
                let p = self.path(&to);
                match self.fs.get(&p) {
                    Some(Entry::Dir) => {
                        self.cwd = p;
                        Io::default()
                    }
                    Some(_) => Io::err(format!("{}: cd: {to}: Not a directory\n", self.name()), 1),
                    None => Io::err(
                        format!("{}: cd: {to}: No such file or directory\n", self.name()),
                        1,
                    ),
                }
            }
            "export" => {
                for a in args {
                    if let Some((k, v)) = a.split_once('=') {
                        self.env.insert(k.to_string(), v.to_string());
                    }
                }
                Io::default()
            }
            "exit" => {
                let code = args
                    .first()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(self.last);
                self.env.insert("\0exit".into(), String::new());
                Io {
                    code,
                    ..Default::default()
                }
            }
            "cat" => {
                if args.is_empty() {
                    return ok(stdin.to_string());
                }
                let mut io = Io::default();
                for a in args {
                    match self.fs.read(&self.path(a)) {
                        Ok(b) => io.stdout.push_str(&String::from_utf8_lossy(b)),
                        Err(e) => {
                            io.stderr.push_str(&if busybox {
                                format!("cat: can't open '{a}': {e}\n")
                            } else {
                                format!("cat: {a}: {e}\n")
                            });
                            io.code = 1;
                        }
                    }
                }
                io
            }
            "ls" => {
                let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                let all = args.iter().any(|a| a.starts_with('-') && a.contains('a'));
                let targets: Vec<String> = if paths.is_empty() {
                    vec![".".into()]
                } else {
                    paths.iter().map(|p| p.to_string()).collect()
                };
                let mut io = Io::default();
                for t in &targets {
                    let p = self.path(t);
                    match self.fs.get(&p) {
                        Some(Entry::File(_)) => io.stdout.push_str(&format!("{t}\n")),
                        Some(Entry::Dir) => {
                            if targets.len() > 1 {
                                io.stdout.push_str(&format!("{t}:\n"));
                            }
                            let mut names = self.fs.list(&p).unwrap_or_default();
                            if all {
                                names.splice(0..0, [".".to_string(), "..".to_string()]);
                            }
                            for n in names.iter().filter(|n| all || !n.starts_with('.')) {
                                io.stdout.push_str(&format!("{n}\n"));
                            }
                        }
                        None => {
                            io.stderr.push_str(&if busybox {
                                format!("ls: {t}: No such file or directory\n")
                            } else {
                                format!("ls: cannot access '{t}': No such file or directory\n")
                            });
                            io.code = if busybox { 1 } else { 2 };
                        }
                    }
                }
                io
            }
            "mkdir" => {
                let parents = args.iter().any(|a| a == "-p");
                let mut io = Io::default();
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let p = self.path(a);
                    let r = if parents {
                        self.fs.mkdir_p(&p)
                    } else {
                        self.fs.mkdir(&p)
                    };
                    if let Err(e) = r {
                        io.stderr.push_str(&if busybox {
                            format!("mkdir: can't create directory '{a}': {e}\n")
                        } else {
                            format!("mkdir: cannot create directory '{a}': {e}\n")
                        });
                        io.code = 1;
                    }
                }
                io
            }
            "rm" => {
                let flags: String = args
                    .iter()
                    .filter(|a| a.starts_with('-'))
                    .flat_map(|a| a.chars())
                    .collect();
                let (recursive, force) = (flags.contains(['r', 'R']), flags.contains('f'));
                let mut io = Io::default();
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    match self.fs.remove(&self.path(a), recursive) {
                        Ok(()) => {}
                        Err(FsError::NotFound) if force => {}
                        Err(e) => {
                            io.stderr.push_str(&if busybox {
                                format!("rm: can't remove '{a}': {e}\n")
                            } else {
                                format!("rm: cannot remove '{a}': {e}\n")
                            });
                            io.code = 1;
                        }
                    }
                }
                io
            }
            "cp" | "mv" => {
                let recursive = args
                    .iter()
                    .any(|a| a.starts_with('-') && a.contains(['r', 'R', 'a']));
                let files: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                let [from, to] = files.as_slice() else {
                    return Io::err(format!("{prog}: missing file operand\n"), 1);
                };
                let (src, mut dst) = (self.path(from), self.path(to));
                if let Some(Entry::Dir) = self.fs.get(&dst) {
                    let base = src.rsplit('/').next().unwrap_or("").to_string();
                    dst = format!("{}/{base}", dst.trim_end_matches('/'));
                }
                let r = if prog == "cp" {
                    self.fs.copy(&src, &dst, recursive)
                } else {
                    self.fs.rename(&src, &dst)
                };
                match r {
                    Ok(()) => Io::default(),
                    Err(FsError::IsDir) if prog == "cp" => Io::err(
                        if busybox {
                            format!("cp: omitting directory '{from}'\n")
                        } else {
                            format!("cp: -r not specified; omitting directory '{from}'\n")
                        },
                        1,
                    ),
                    Err(e) => Io::err(
                        if busybox {
                            format!("{prog}: can't stat '{from}': {e}\n")
                        } else {
                            format!("{prog}: cannot stat '{from}': {e}\n")
                        },
                        1,
                    ),
                }
            }
            "touch" => {
                let mut io = Io::default();
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let p = self.path(a);
                    if self.fs.get(&p).is_none() {
                        if let Err(e) = self.fs.write(&p, Vec::new()) {
                            io.stderr
                                .push_str(&format!("touch: cannot touch '{a}': {e}\n"));
                            io.code = 1;
                        }
                    }
                }
                io
            }
            "test" | "[" => {
                let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
                if prog == "[" {
                    if a.last() != Some(&"]") {
                        return Io::err(format!("{}: [: missing `]'\n", self.name()), 2);
                    }
                    a.pop();
                }
                let held = match a.as_slice() {
                    [] => false,
                    [s] => !s.is_empty(),
                    ["!", rest @ ..] => !self.test(rest),
                    rest => self.test(rest),
                };
                Io {
                    code: i32::from(!held),
                    ..Default::default()
                }
            }
            "head" => {
                let n = args
                    .windows(2)
                    .find(|w| w[0] == "-n")
                    .and_then(|w| w[1].parse().ok())
                    .unwrap_or(10usize);
                let text = match args
                    .iter()
                    .find(|a| !a.starts_with('-') && a.parse::<usize>().is_err())
                {
                    Some(f) => match self.fs.read(&self.path(f)) {
                        Ok(b) => String::from_utf8_lossy(b).into_owned(),
                        Err(e) => return Io::err(format!("head: {f}: {e}\n"), 1),
                    },
                    None => stdin.to_string(),
                };
                ok(text.lines().take(n).map(|l| format!("{l}\n")).collect())
            }
            "wc" => {
                let file = args.iter().find(|a| !a.starts_with('-'));
                let read;
                let text = match file {
                    Some(f) => match self.fs.read(&self.path(f)) {
                        Ok(b) => {
                            read = String::from_utf8_lossy(b).into_owned();
                            read.as_str()
                        }
                        Err(e) => return Io::err(format!("wc: {f}: {e}\n"), 1),
                    },
                    None => stdin,
                };
                let lines = text.matches('\n').count();
                if args.iter().any(|a| a == "-l") {
                    ok(format!("{lines}\n"))
                } else {
                    ok(format!(
                        "{lines} {} {}\n",
                        text.split_whitespace().count(),
                        text.len()
                    ))
                }
            }
            "grep" => {
                let flags: String = args
                    .iter()
                    .filter(|a| a.starts_with('-'))
                    .flat_map(|a| a.chars().skip(1))
                    .collect();
                let mut words = args.iter().filter(|a| !a.starts_with('-'));
                let Some(pattern) = words.next() else {
                    return Io::err("Usage: grep [-cvqi] PATTERN [FILE]...\n".into(), 2);
                };
                let (invert, count, quiet, fold) = (
                    flags.contains('v'),
                    flags.contains('c'),
                    flags.contains('q'),
                    flags.contains('i'),
                );
                let files: Vec<&String> = words.collect();
                let mut text = String::new();
                if files.is_empty() {
                    text.push_str(stdin);
                }
                for f in &files {
                    match self.fs.read(&self.path(f)) {
                        Ok(b) => text.push_str(&String::from_utf8_lossy(b)),
                        Err(e) => return Io::err(format!("grep: {f}: {e}\n"), 2),
                    }
                }
                let hit = |l: &str| {
                    let found = if fold {
                        l.to_lowercase().contains(&pattern.to_lowercase())
                    } else {
                        l.contains(pattern.as_str())
                    };
                    found != invert
                };
                let found: Vec<&str> = text.lines().filter(|l| hit(l)).collect();
                let stdout = if quiet {
                    String::new()
                } else if count {
                    format!("{}\n", found.len())
                } else {
                    found.iter().map(|l| format!("{l}\n")).collect()
                };
                Io {
                    code: i32::from(found.is_empty()),
                    stdout,
                    ..Default::default()
                }
            }
            "sh" | "bash" if args.first().map(String::as_str) == Some("-c") => {
                let script = args.get(1).cloned().unwrap_or_default();
                let mut inner = self.clone();
                let io = Box::pin(inner.run(&script, stdin, ext)).await;
                self.fs = inner.fs;
                io
            }
            _ => match ext.run(self, argv, stdin).await {
                Some(io) => io,
                None => Io::err(
                    match self.flavor {
                        Flavor::Gnu => format!("bash: {prog}: command not found\n"),
                        Flavor::Busybox => format!("sh: {prog}: not found\n"),
                    },
                    127,
                ),
            },
        }
    }

    /// `test`'s binary and unary expressions.
    fn test(&self, a: &[&str]) -> bool {
        match a {
            ["-f", p] => matches!(self.fs.get(&self.path(p)), Some(Entry::File(_))),
            ["-d", p] => matches!(self.fs.get(&self.path(p)), Some(Entry::Dir)),
            ["-e", p] => self.fs.get(&self.path(p)).is_some(),
            ["-s", p] => self.fs.read(&self.path(p)).is_ok_and(|b| !b.is_empty()),
            ["-z", s] => s.is_empty(),
            ["-n", s] => !s.is_empty(),
            [x, "=", y] | [x, "==", y] => x == y,
            [x, "!=", y] => x != y,
            [x, "-eq", y] => x.parse::<i64>().ok() == y.parse::<i64>().ok(),
            [x, "-ne", y] => x.parse::<i64>().ok() != y.parse::<i64>().ok(),
            _ => false,
        }
    }
}

/// `printf FORMAT ARGS`: `%s`, `%d`, `%%`, and the escapes `\n`, `\t`, `\\`.
fn printf(format: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            },
            '%' => match chars.next() {
                Some('s') => out.push_str(args.next().map_or("", String::as_str)),
                Some('d') => out.push_str(
                    &args
                        .next()
                        .and_then(|a| a.parse::<i64>().ok())
                        .unwrap_or(0)
                        .to_string(),
                ),
                Some('%') => out.push('%'),
                Some(o) => {
                    out.push('%');
                    out.push(o);
                }
                None => out.push('%'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct None_;
    impl External for None_ {
        async fn run(&mut self, _: &mut Sh, _: &[String], _: &str) -> Option<Io> {
            None
        }
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the shell never waits by itself"),
        }
    }

    fn sh() -> Sh {
        let mut fs = Fs::default();
        fs.mkdir_p("/root").unwrap();
        Sh::new(fs, "/root", Flavor::Gnu)
    }

    #[test]
    fn a_here_document_writes_a_dockerfile_with_variables_expanded() {
        let mut s = sh();
        s.env.insert("IMG".into(), "nginx".into());
        let io = block(s.run(
            "mkdir -p app && cat > app/Dockerfile <<EOF\nFROM $IMG\nCOPY index.html /x\nEOF\necho '<h1>v1</h1>' > app/index.html; ls app",
            "",
            &mut None_,
        ));
        assert_eq!(io.code, 0, "{io:?}");
        assert_eq!(io.stdout, "Dockerfile\nindex.html\n");
        assert_eq!(
            s.fs.read("/root/app/Dockerfile").unwrap(),
            b"FROM nginx\nCOPY index.html /x\n"
        );
        assert_eq!(s.fs.read("/root/app/index.html").unwrap(), b"<h1>v1</h1>\n");
    }

    #[test]
    fn lists_pipes_and_failures_behave_as_in_bash() {
        let mut s = sh();
        let io = block(s.run(
            "cat nope || echo missing; false && echo no; printf '%s-%d\\n' a 7 | grep a",
            "",
            &mut None_,
        ));
        assert_eq!(io.stdout, "missing\na-7\n");
        assert_eq!(io.stderr, "cat: nope: No such file or directory\n");
        let io = block(s.run("dokcer ps", "", &mut None_));
        assert_eq!(
            (io.code, io.stderr.as_str()),
            (127, "bash: dokcer: command not found\n")
        );
        let io = block(s.run("echo x > /no/such/dir/f", "", &mut None_));
        assert_eq!(
            io.stderr,
            "bash: /no/such/dir/f: No such file or directory\n"
        );
        let io = block(s.run(
            "[ -d /root ] && test -z \"$UNSET\" && echo yes; exit 3; echo never",
            "",
            &mut None_,
        ));
        assert_eq!((io.stdout.as_str(), io.code), ("yes\n", 3));
        let io = block(s.run("echo 'a && b' \"$?\" 2>&1", "", &mut None_));
        assert_eq!(io.stdout, "a && b 3\n");
    }

    #[test]
    fn busybox_says_its_own_words() {
        let mut s = Sh::new(Fs::default(), "/", Flavor::Busybox);
        let io = block(s.run("cat /x; nope", "", &mut None_));
        assert_eq!(
            io.stderr,
            "cat: can't open '/x': No such file or directory\nsh: nope: not found\n"
        );
    }
}
