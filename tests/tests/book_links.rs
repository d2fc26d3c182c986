//! The guide's links hold: every relative link and image in `book/src/**/*.md` points at a file
//! that exists, every `#anchor` into a chapter names one of its headings (mdBook's id rule), every
//! `{{#include path:anchor}}` names a file that has that `ANCHOR:`, every chapter is listed in
//! `SUMMARY.md`, and no Rust is pasted into the book by hand (a `rust` block holds only includes).
//!
//! Runs with `cargo test --workspace`, so a broken link fails CI before `mdbook build` would
//! (mdbook only warns about most of these, and not at all about anchors).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src")
}

/// Every markdown file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Joins `target` onto `base` and folds `..` without touching the file system.
fn resolve(base: &Path, target: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(target).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A line of markdown, classified: inside a fenced code block (with the fence's info string) or
/// in prose.
enum Line<'a> {
    Prose(&'a str),
    Code { info: &'a str, text: &'a str },
    Fence,
}

fn classify(markdown: &str) -> Vec<(usize, Line<'_>)> {
    let mut out = Vec::new();
    let mut fence: Option<(&str, &str)> = None; // (marker, info)
    for (number, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(marker)) => {
                fence = Some((marker, trimmed[marker.len()..].trim()));
                out.push((number + 1, Line::Fence));
            }
            (Some((open, _)), Some(marker)) if marker == open => {
                fence = None;
                out.push((number + 1, Line::Fence));
            }
            (Some((_, info)), _) => out.push((number + 1, Line::Code { info, text: line })),
            (None, None) => out.push((number + 1, Line::Prose(line))),
        }
    }
    out
}

/// Removes inline code spans, so `[a](b)` written as code is not taken for a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for ch in line.chars() {
        if ch == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(ch);
        }
    }
    out
}

/// Link and image targets in one line of prose: `[text](target)`, `![alt](target)`,
/// `[label]: target` and HTML `src="target"` / `href="target"`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // `[text](target "title")`: the target ends at the first space.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(colon) = trimmed.find("]: ") {
            let target = trimmed[colon + 3..].split_whitespace().next().unwrap_or("");
            targets.push(target.to_string());
        }
    }
    for attribute in ["src=\"", "href=\""] {
        let mut rest = line.as_str();
        while let Some(start) = rest.find(attribute) {
            let after = &rest[start + attribute.len()..];
            let end = after.find('"').unwrap_or(after.len());
            targets.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    targets
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// mdBook's heading id: lowercase; whitespace becomes `-`; letters, digits, `-` and `_` stay;
/// everything else is dropped. Markdown emphasis and code marks vanish when the heading renders.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .trim_start_matches('#')
        .trim()
        .chars()
        .filter_map(|ch| {
            if ch.is_alphanumeric() || ch == '_' || ch == '-' {
                Some(ch.to_ascii_lowercase())
            } else if ch.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The ids of every heading in a chapter, with mdBook's `-1`, `-2`... for repeats.
fn heading_ids(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for (_, line) in classify(markdown) {
        let Line::Prose(text) = line else { continue };
        if !text.starts_with('#') {
            continue;
        }
        let base = heading_id(text);
        let count = seen.entry(base.clone()).or_insert(0);
        ids.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    ids
}

/// The `{{#include ...}}` (and `rustdoc_include`) directives in a line: (path, anchor or range).
fn includes(line: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{#") {
        let after = &rest[start + 3..];
        let end = after.find("}}").unwrap_or(after.len());
        let directive = after[..end].trim();
        let argument = directive
            .strip_prefix("include ")
            .or_else(|| directive.strip_prefix("rustdoc_include "));
        if let Some(argument) = argument {
            let argument = argument.trim();
            match argument.split_once(':') {
                Some((path, selector)) => {
                    found.push((path.to_string(), Some(selector.to_string())))
                }
                None => found.push((argument.to_string(), None)),
            }
        }
        rest = &after[end..];
    }
    found
}

/// Whether an include selector is a line range (`10`, `10:20`, `:20`, `10:`) rather than an
/// anchor name.
fn is_line_range(selector: &str) -> bool {
    selector.chars().all(|ch| ch.is_ascii_digit() || ch == ':')
}

/// Whether `source` marks `anchor` with both `ANCHOR: name` and `ANCHOR_END: name`.
fn has_anchor(source: &str, anchor: &str) -> bool {
    let marks = |prefix: &str| {
        source.lines().any(|line| {
            line.split_once(prefix)
                .is_some_and(|(_, name)| name.trim() == anchor)
        })
    };
    marks("ANCHOR: ") && marks("ANCHOR_END: ")
}

/// Chapters listed in SUMMARY.md, relative to `book/src`.
fn summary_chapters(src: &Path) -> BTreeSet<PathBuf> {
    let summary = fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md");
    classify(&summary)
        .into_iter()
        .filter_map(|(_, line)| match line {
            Line::Prose(text) => Some(link_targets(text)),
            _ => None,
        })
        .flatten()
        .filter(|target| !target.is_empty() && !is_external(target))
        .map(|target| resolve(Path::new(""), target.split('#').next().unwrap_or("")))
        .collect()
}

/// Every problem in one chapter.
fn check_chapter(src: &Path, file: &Path, problems: &mut Vec<String>) {
    let markdown = fs::read_to_string(file).expect("chapter");
    let dir = file.parent().expect("chapter directory");
    let name = file.strip_prefix(src).unwrap_or(file).display().to_string();
    let mut rust_block: Option<(usize, bool)> = None; // (first line, only includes so far)
    for (number, line) in classify(&markdown) {
        let at = format!("{name}:{number}");
        match line {
            Line::Prose(text) => {
                for target in link_targets(text) {
                    check_link(src, file, dir, &target, &at, problems);
                }
                for include in includes(text) {
                    check_include(dir, include, &at, problems);
                }
            }
            Line::Code { info, text } => {
                for include in includes(text) {
                    check_include(dir, include, &at, problems);
                }
                let language = info.split([',', ' ']).next().unwrap_or("");
                if language.is_empty() {
                    problems.push(format!("{at}: code block without a language (say `text`)"));
                } else if language == "rust" {
                    let only_includes = text.trim().is_empty() || !includes(text).is_empty();
                    let block = rust_block.get_or_insert((number, true));
                    block.1 &= only_includes;
                }
            }
            Line::Fence => {
                if let Some((first, false)) = rust_block.take() {
                    problems.push(format!(
                        "{name}:{first}: Rust pasted by hand; include it from a compiled file"
                    ));
                }
            }
        }
    }
}

fn check_link(
    src: &Path,
    file: &Path,
    dir: &Path,
    target: &str,
    at: &str,
    problems: &mut Vec<String>,
) {
    if target.is_empty() || is_external(target) {
        return;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(absolute) = path.strip_prefix('/') {
        resolve(src, absolute)
    } else {
        resolve(dir, path)
    };
    if !resolved.exists() {
        problems.push(format!("{at}: link to missing file `{target}`"));
        return;
    }
    let Some(anchor) = anchor else { return };
    if resolved.extension().is_some_and(|ext| ext == "md") {
        let chapter = fs::read_to_string(&resolved).expect("linked chapter");
        if !heading_ids(&chapter).contains(anchor) {
            problems.push(format!("{at}: `{target}`: no heading with id `{anchor}`"));
        }
    }
}

fn check_include(
    dir: &Path,
    (path, selector): (String, Option<String>),
    at: &str,
    problems: &mut Vec<String>,
) {
    let resolved = resolve(dir, &path);
    let Ok(source) = fs::read_to_string(&resolved) else {
        problems.push(format!("{at}: include of missing file `{path}`"));
        return;
    };
    if let Some(anchor) = selector.filter(|s| !is_line_range(s)) {
        if !has_anchor(&source, &anchor) {
            problems.push(format!(
                "{at}: `{path}` has no `ANCHOR: {anchor}` / `ANCHOR_END: {anchor}`"
            ));
        }
    }
}

#[test]
fn book_links_anchors_and_includes_resolve() {
    let src = book_src();
    let listed = summary_chapters(&src);
    let mut problems = Vec::new();
    for file in markdown_files(&src) {
        let relative = file
            .strip_prefix(&src)
            .expect("under book/src")
            .to_path_buf();
        if relative != Path::new("SUMMARY.md") && !listed.contains(&relative) {
            problems.push(format!("{}: not listed in SUMMARY.md", relative.display()));
        }
        check_chapter(&src, &file, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "the book has {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn heading_ids_follow_mdbook() {
    assert_eq!(heading_id("## Raft in ten minutes"), "raft-in-ten-minutes");
    assert_eq!(heading_id("# `LogId` and `3@17`"), "logid-and-317");
    assert_eq!(
        heading_id("### Safety: the five properties!"),
        "safety-the-five-properties"
    );
    assert_eq!(
        heading_id("## snake_case and kebab-case"),
        "snake_case-and-kebab-case"
    );
    let ids = heading_ids("# A\n```text\n# not a heading\n```\n## A\n## B");
    assert_eq!(
        ids,
        BTreeSet::from(["a".to_string(), "a-1".to_string(), "b".to_string()])
    );
}

#[test]
fn the_checker_finds_what_it_should() {
    assert_eq!(
        link_targets("see [x](a.md#b) and ![i](img/c.svg \"t\"), not `[y](z.md)`"),
        vec!["a.md#b".to_string(), "img/c.svg".to_string()]
    );
    assert_eq!(
        includes("{{#include ../../examples/embed/src/main.rs:main}}"),
        vec![(
            "../../examples/embed/src/main.rs".to_string(),
            Some("main".to_string())
        )]
    );
    assert!(is_line_range("10:20") && !is_line_range("main"));
    assert!(has_anchor("// ANCHOR: a\nx\n// ANCHOR_END: a\n", "a"));
    assert!(!has_anchor("// ANCHOR: a\nx\n", "a"));
    assert_eq!(
        resolve(Path::new("book/src"), "../../examples/x.rs"),
        PathBuf::from("examples/x.rs")
    );
}
