//! The architecture's rules, checked on every change: the dependency rule
//! (ARCHITECTURE.md's tables say which top-level module of each crate uses
//! which, lowest first, and the code is held to them) and the size rule (no
//! source file over 600 lines, no function over 80).
//!
//! An import is any `crate::NAME` path (also inside `use crate::{..}`
//! groups, and `super::` paths that climb to the crate root) in a source
//! file of one top-level module naming another, comments included (a doc
//! link is a dependency a reader follows). The `#[cfg(test)]` module that
//! closes a file and test modules of their own (`tests.rs`) are not the
//! module's code: tests may reach for whatever helps them. Each table row lists what its module
//! uses; a module may only use modules of rows above its own, so the tables
//! admit no cycle, and every listed use must really be there, so the tables
//! stay true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose modules ARCHITECTURE.md lays out.
const CRATES: [&str; 6] = [
    "airlock-domain",
    "airlock-store",
    "airlock-services",
    "airlock",
    "airbyte-sim",
    "airbyte-client",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One documented layer table: each module and what it uses, in order.
type Table = Vec<(String, BTreeSet<String>)>;

/// The names in backticks of one table cell.
fn names(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The table that follows `<!-- layers: CRATE -->` in ARCHITECTURE.md.
fn documented(architecture: &str, krate: &str) -> Table {
    let marker = format!("<!-- layers: {krate} -->");
    let start = architecture
        .find(&marker)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no `{marker}` before the table of {krate}"));
    architecture[start + marker.len()..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            let module = names(cells[1]).into_iter().next().unwrap_or_else(|| {
                panic!("ARCHITECTURE.md, table of {krate}: a row without a module: {line}")
            });
            (module, names(cells[2]))
        })
        .collect()
}

/// A source file, the top-level module it belongs to and its depth
/// (`src/a.rs` and `src/a/mod.rs` are 1, `src/a/b.rs` is 2).
struct Source {
    path: PathBuf,
    module: String,
    depth: usize,
}

fn sources(src: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative: Vec<String> = path
                .strip_prefix(src)
                .expect("below src")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            let top = relative[0].trim_end_matches(".rs").to_owned();
            if relative.len() == 1 && (top == "lib" || top == "main") {
                continue; // the crate root may use anything
            }
            if relative.last().is_some_and(|f| f == "tests.rs") {
                continue; // a `#[cfg(test)] mod tests;` of its own
            }
            let depth =
                relative.len() - usize::from(relative.last().is_some_and(|f| f == "mod.rs"));
            found.push(Source {
                path,
                module: top,
                depth,
            });
        }
    }
    found
}

/// The file's own code: without comments and without the closing
/// `#[cfg(test)]` module.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    own_lines(text, false)
}

/// The file's lines before its closing `#[cfg(test)]` module, comments
/// kept or not.
fn own_lines(text: &str, comments: bool) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if !comments && trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// The first path segment after each `crate::` (or after enough `super::`
/// to reach the root) on `line`, with the segments of `{..}` groups.
fn imported(line: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = line;
    loop {
        let crate_at = rest.find("crate::");
        let super_at = rest.find("super::");
        let (at, after) = match (crate_at, super_at) {
            (Some(c), Some(s)) if s < c => (s, None),
            (Some(c), _) => (c, Some(&rest[c + "crate::".len()..])),
            (None, Some(s)) => (s, None),
            (None, None) => break,
        };
        // `crate::` must start a path, not end a longer name (`mycrate::`).
        let starts_path = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = match after {
            Some(after) => after,
            None => {
                let mut tail = &rest[at..];
                let mut climbs = 0;
                while let Some(next) = tail.strip_prefix("super::") {
                    climbs += 1;
                    tail = next;
                }
                if climbs < depth {
                    rest = tail;
                    continue;
                }
                tail
            }
        };
        if starts_path {
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                found.extend(
                    group[..end]
                        .split(',')
                        .map(|item| ident(item.trim()))
                        .filter(|name| !name.is_empty() && name != "self"),
                );
            } else {
                let name = ident(after);
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
        rest = after;
    }
    found
}

/// Every use of one top-level module by another in `krate`, with the first
/// place it happens.
fn uses(krate: &str) -> (BTreeSet<String>, BTreeMap<(String, String), String>) {
    let src = repository().join("crates").join(krate).join("src");
    let files = sources(&src);
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(&file.path).expect("readable source");
        // Doc comments count: a link or a path a reader is sent to is a
        // dependency too.
        for (number, line) in own_lines(&text, true) {
            for target in imported(&line, file.depth) {
                if target != file.module && modules.contains(&target) {
                    let place = format!(
                        "{}:{number}",
                        file.path.strip_prefix(&src).expect("below src").display()
                    );
                    edges.entry((file.module.clone(), target)).or_insert(place);
                }
            }
        }
    }
    (modules, edges)
}

/// The table as the code has it, lowest first where it can be ordered:
/// printed on failure so that a deliberate change is easy to write down.
fn as_table(modules: &BTreeSet<String>, edges: &BTreeMap<(String, String), String>) -> String {
    let mut placed: Vec<String> = Vec::new();
    let mut left: BTreeSet<String> = modules.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|m| {
                edges
                    .keys()
                    .filter(|(from, _)| from == *m)
                    .all(|(_, to)| placed.contains(to))
            })
            .cloned()
            .collect();
        // A cycle: put the rest down anyway, so that it can be seen.
        let next = if ready.is_empty() {
            left.iter().cloned().collect()
        } else {
            ready
        };
        for m in next {
            left.remove(&m);
            placed.push(m);
        }
    }
    let mut out = String::from("| module | uses |\n| --- | --- |\n");
    for m in placed {
        let used: Vec<String> = edges
            .keys()
            .filter(|(from, _)| *from == m)
            .map(|(_, to)| format!("`{to}`"))
            .collect();
        let used = if used.is_empty() {
            "—".to_owned()
        } else {
            used.join(", ")
        };
        out.push_str(&format!("| `{m}` | {used} |\n"));
    }
    out
}

fn check(krate: &str, architecture: &str) -> Vec<String> {
    let table = documented(architecture, krate);
    let (modules, edges) = uses(krate);
    let mut problems = Vec::new();
    let rows: BTreeSet<String> = table.iter().map(|(m, _)| m.clone()).collect();
    for m in modules.difference(&rows) {
        problems.push(format!(
            "{krate}: module `{m}` has no row in ARCHITECTURE.md"
        ));
    }
    for m in rows.difference(&modules) {
        problems.push(format!(
            "{krate}: ARCHITECTURE.md lists `{m}`, which is not a module"
        ));
    }
    let mut above = BTreeSet::new();
    for (module, listed) in &table {
        for used in listed {
            if !above.contains(used) {
                problems.push(format!(
                    "{krate}: ARCHITECTURE.md lets `{module}` use `{used}`, which is not in a row above it (layers point down only)"
                ));
            }
            if !edges.contains_key(&(module.clone(), used.clone())) {
                problems.push(format!(
                    "{krate}: ARCHITECTURE.md says `{module}` uses `{used}`, but it does not"
                ));
            }
        }
        above.insert(module.clone());
    }
    let allowed: BTreeMap<&String, &BTreeSet<String>> = table.iter().map(|(m, u)| (m, u)).collect();
    for ((from, to), place) in &edges {
        if allowed.get(from).is_some_and(|listed| !listed.contains(to)) {
            problems.push(format!(
                "{krate}: `{from}` uses `{to}` ({place}), which ARCHITECTURE.md does not allow"
            ));
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "{krate}: the modules' uses as the code has them:\n{}",
            as_table(&modules, &edges)
        ));
    }
    problems
}

#[test]
fn every_import_follows_the_layer_tables_of_architecture_md() {
    let architecture =
        std::fs::read_to_string(repository().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let problems: Vec<String> = CRATES
        .iter()
        .flat_map(|krate| check(krate, &architecture))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Longest source file, in lines (test modules of their own excluded).
const MAX_FILE_LINES: usize = 600;
/// Longest function, in lines from `fn` to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// The functions of `lines` (each from its `fn` line to its closing brace)
/// longer than `max`, as (name, first line, length).
fn long_functions(lines: &[(usize, String)], max: usize) -> Vec<(String, usize, usize)> {
    let mut long = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = function_name(&lines[i].1) else {
            i += 1;
            continue;
        };
        let (mut depth, mut opened, mut end) = (0_i64, false, None);
        for (j, (_, line)) in lines.iter().enumerate().skip(i) {
            for c in line.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // A declaration without a body (`fn f();` in a trait).
            if !opened && line.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                end = Some(j);
                break;
            }
        }
        let Some(end) = end else {
            i += 1;
            continue;
        };
        let length = lines[end].0 - lines[i].0 + 1;
        if length > max {
            long.push((name, lines[i].0, length));
        }
        i = end + 1;
    }
    long
}

/// The name of the function a line starts, if it starts one.
fn function_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe" | "extern" => {}
            w if w.starts_with("pub(") => {}
            "fn" => {
                let name: String = words
                    .next()?
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            _ => return None,
        }
    }
    None
}

#[test]
fn no_source_file_or_function_is_too_long() {
    let mut problems = Vec::new();
    for krate in CRATES {
        let src = repository().join("crates").join(krate).join("src");
        for file in sources(&src) {
            let text = std::fs::read_to_string(&file.path).expect("readable source");
            let name = file
                .path
                .strip_prefix(repository())
                .expect("in the repository");
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                problems.push(format!(
                    "{}: {lines} lines (at most {MAX_FILE_LINES})",
                    name.display()
                ));
            }
            // Lengths are in the file's own lines: comments inside a
            // function count, as they are read too.
            for (function, at, length) in long_functions(&code_lines(&text), MAX_FUNCTION_LINES) {
                problems.push(format!(
                    "{}:{at}: fn {function} is {length} lines (at most {MAX_FUNCTION_LINES})",
                    name.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where the policy's decisions are taken: only the access guard decides
/// about a caller (`Policy::decide`), so that every decision is counted and
/// every refusal recorded the same way at every door. Elsewhere the policy
/// is only asked questions (`allows`, to filter what a caller sees).
const DECIDES: &str = "crates/airlock/src/web/auth/";

#[test]
fn only_the_access_guard_takes_decisions() {
    let src = repository().join("crates/airlock/src");
    let mut elsewhere = Vec::new();
    for file in sources(&src) {
        let name = file
            .path
            .strip_prefix(repository())
            .expect("in the repository");
        if name.starts_with(DECIDES) {
            continue;
        }
        let text = std::fs::read_to_string(&file.path).expect("readable source");
        for (at, line) in code_lines(&text) {
            if line.contains(".decide(") {
                elsewhere.push(format!("{}:{at}: {}", name.display(), line.trim()));
            }
        }
    }
    assert!(
        elsewhere.is_empty(),
        "decisions taken outside the access guard ({DECIDES}); ask the Caller:\n{}",
        elsewhere.join("\n")
    );
}

#[test]
fn long_functions_are_measured_from_fn_to_closing_brace() {
    let text = "fn short() {\n    1;\n}\n\npub(crate) async fn long(\n    a: u8,\n) {\n    if a > 1 {\n        2;\n    }\n}\ntrait T {\n    fn declared(&self);\n}\n";
    let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    assert_eq!(long_functions(&lines, 3), [("long".to_owned(), 5, 7)]);
    assert!(long_functions(&lines, 7).is_empty());
    assert_eq!(
        function_name("    pub fn new() -> Self {"),
        Some("new".into())
    );
    assert_eq!(function_name("let f = fn_pointer;"), None);
}

#[test]
fn imports_are_read_from_paths_groups_and_climbs() {
    assert_eq!(imported("use crate::store::Store;", 1), ["store"]);
    assert_eq!(
        imported("use crate::{auth, faults::Faults, self};", 1),
        ["auth", "faults"]
    );
    assert_eq!(imported("let x = crate::clock::wall_ms();", 2), ["clock"]);
    assert_eq!(imported("use super::model::Job;", 2), Vec::<String>::new());
    assert_eq!(imported("use super::super::jobs::COLUMNS;", 2), ["jobs"]);
    assert_eq!(imported("use mycrate::store;", 1), Vec::<String>::new());
    let text = "use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n    use crate::c;\n}\n";
    let lines: Vec<String> = code_lines(text).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, ["use crate::a;"]);
}
