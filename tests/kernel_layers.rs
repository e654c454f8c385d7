//! The kernel's layers: every module of `kernel/src` belongs to one layer, and no module names a higher one.
//!
//! `kernel/src` is meant to be read from the bottom up (docs/architecture.md, "Layers"): each layer uses only
//! the layers below it, and a lower layer reaches a higher one only through a hook the higher layer installs at
//! boot (a function pointer, a trait object, a typed per-CPU slot). This host test keeps that true. It parses
//! every file reachable from `kernel/src/main.rs` through `mod` declarations, collects every path that names
//! another module of the kernel (`use crate::…`, `crate::…`/`super::…`/`self::…` paths in code and types,
//! `crate::…` inside macro arguments, and the kernel's own `#[macro_export]` macros by name), maps each module
//! to its layer through [`KERNEL_LAYERS`], and fails, naming `file:line`, on:
//!
//! 1. a module that is in no layer (every new module must be placed);
//! 2. a path from a module to a module of a higher layer;
//! 3. a cycle between the units of the table (two modules of one layer that name each other, directly or
//!    through others): within a layer the order is a partial order too, so each unit can be read after the
//!    ones it uses;
//! 4. a `mod` list in `main.rs` that is not in layer order, bottom to top, so the crate root shows the layers.
//!
//! A unit is an entry of the table: a top-level module with everything below it, or a submodule listed on its
//! own (which then belongs to its own layer, not its parent's). A parent naming its child and the child naming
//! its parent through `super::` are the same unit and never a cycle.
//!
//! Not seen, by design: what macros expand to, and names brought in by glob imports of other crates. Both are
//! outside the kernel's own module graph.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The kernel's layers, bottom to top, each with the module units it holds. docs/architecture.md draws this
/// table; `kernel/src/main.rs` lists its modules in this order.
const KERNEL_LAYERS: &[(&str, &[&str])] = &[
    ("base", &["arch", "selftest", "sync"]),
    ("memory", &["memory"]),
    ("firmware", &["firmware"]),
    ("per-core", &["percpu"]),
    ("rings", &["ring3"]),
    ("execution", &["exec", "time"]),
    ("cores", &["cores"]),
    ("scheduling", &["sched"]),
    ("devices", &["console", "power"]),
    ("interrupts", &["interrupts"]),
    ("ipc", &["ipc"]),
    ("smp", &["smp"]),
    ("sips", &["sip"]),
    ("top", &["boot", "console_server", "panic", "services"]),
];

/// One broken rule, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    path: PathBuf,
    line: usize,
    message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = self.path.strip_prefix(root).unwrap_or(&self.path);
        write!(f, "{}:{}: {}", path.display(), self.line, self.message)
    }
}

/// A module of the crate: its path from the root (`["sched", "preempt"]`; empty for the root) and its file.
#[derive(Debug)]
struct Module {
    path: Vec<String>,
    file: PathBuf,
    /// Child modules in declaration order, with the line of each `mod` item.
    children: Vec<(String, usize)>,
}

/// A path from one module to another, where it was written.
#[derive(Debug)]
struct Reference {
    from: Vec<String>,
    to: Vec<String>,
    file: PathBuf,
    line: usize,
}

/// Everything the check needs from the sources.
#[derive(Debug, Default)]
struct Crate {
    modules: Vec<Module>,
    references: Vec<Reference>,
    /// `#[macro_export]` macros (reachable as `crate::name!`) and the module that defines each.
    exported_macros: BTreeMap<String, Vec<String>>,
    problems: Vec<Violation>,
}

/// Parses the crate rooted at `root_file` (a `main.rs` or `lib.rs`), following `mod` declarations.
fn read_crate(root_file: &Path) -> Crate {
    let mut krate = Crate::default();
    let dir = root_file.parent().expect("a crate root has a directory").to_owned();
    read_module(&mut krate, Vec::new(), root_file, &dir);
    // Macro references could only be resolved once every `#[macro_export]` was seen.
    let macros = std::mem::take(&mut krate.exported_macros);
    for r in &mut krate.references {
        if let [name] = r.to.as_slice()
            && let Some(name) = name.strip_suffix('!')
        {
            r.to = macros.get(name).cloned().unwrap_or_default();
        }
    }
    krate.exported_macros = macros;
    krate
}

/// Reads one module file; `child_dir` is where its own `mod x;` files live.
fn read_module(krate: &mut Crate, path: Vec<String>, file: &Path, child_dir: &Path) {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            krate.problems.push(Violation { path: file.to_owned(), line: 1, message: format!("cannot read: {e}") });
            return;
        }
    };
    let ast = match syn::parse_file(&text) {
        Ok(ast) => ast,
        Err(e) => {
            let line = e.span().start().line;
            krate.problems.push(Violation { path: file.to_owned(), line, message: format!("cannot parse: {e}") });
            return;
        }
    };
    read_items(krate, path, file, child_dir, &ast.items);
}

/// Reads the items of one module (a file, or an inline `mod x { … }`).
fn read_items(krate: &mut Crate, path: Vec<String>, file: &Path, child_dir: &Path, items: &[syn::Item]) {
    let index = krate.modules.len();
    krate.modules.push(Module { path: path.clone(), file: file.to_owned(), children: Vec::new() });
    let children = items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    let mut paths = PathCollector { found: Vec::new(), children };
    // A child module's contents are the child's references, read when the child is.
    items.iter().filter(|item| !matches!(item, syn::Item::Mod(_))).for_each(|item| paths.visit_item(item));
    krate.references.extend(paths.found.into_iter().map(|(to, line)| Reference {
        from: path.clone(),
        to: resolve(&path, to),
        file: file.to_owned(),
        line,
    }));
    for item in items {
        match item {
            syn::Item::Macro(m) if m.mac.path.is_ident("macro_rules") => {
                let exported = m.attrs.iter().any(|a| a.path().is_ident("macro_export"));
                if let (true, Some(name)) = (exported, &m.ident) {
                    krate.exported_macros.insert(name.to_string(), path.clone());
                }
            }
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                let line = m.ident.span().start().line;
                krate.modules[index].children.push((name.clone(), line));
                let mut child = path.clone();
                child.push(name.clone());
                match &m.content {
                    Some((_, inner)) => read_items(krate, child, file, &child_dir.join(&name), inner),
                    None => {
                        let flat = child_dir.join(format!("{name}.rs"));
                        let nested = child_dir.join(&name).join("mod.rs");
                        let (child_file, grandchild_dir) =
                            if flat.exists() { (flat, child_dir.join(&name)) } else { (nested, child_dir.join(&name)) };
                        read_module(krate, child, &child_file, &grandchild_dir);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Turns a path as written in `module` into a path from the crate root, or a macro name (`name!`) to look up
/// later.
fn resolve(module: &[String], written: Vec<String>) -> Vec<String> {
    let mut at: Vec<String> = module.to_vec();
    let mut rest = written.as_slice();
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                at.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    if let [only] = rest
        && only.ends_with('!')
        && written.first().map(String::as_str) == Some("crate")
    {
        return vec![only.clone()];
    }
    at.extend(rest.iter().filter(|s| !s.ends_with('!')).cloned());
    at
}

/// Collects the paths of one module that may name another module of the crate, with their lines.
struct PathCollector {
    found: Vec<(Vec<String>, usize)>,
    /// Modules declared in this one, which its code names without a prefix.
    children: Vec<String>,
}

impl PathCollector {
    fn note(&mut self, segments: Vec<String>, line: usize) {
        let first = segments.first().map(String::as_str);
        let relative = matches!(first, Some("crate" | "self" | "super"));
        let child = first.is_some_and(|f| self.children.iter().any(|c| c == f));
        if relative || child {
            self.found.push((segments, line));
        }
    }

    /// `crate :: a :: b` (and `super ::`/`self ::`) sequences inside a macro's tokens.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(id) if matches!(id.to_string().as_str(), "crate" | "super" | "self") => {
                    let line = id.span().start().line;
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        let colons = matches!((tokens.get(j), tokens.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                        match (colons, tokens.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segments.len() > 1 {
                        self.found.push((segments, line));
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = path.segments.first().map_or(1, |s| s.ident.span().start().line);
        self.note(segments, line);
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut flat = Vec::new();
        flatten_use(&item.tree, Vec::new(), &mut flat);
        for (segments, line) in flat {
            self.note(segments, line);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let segments: Vec<String> = mac.path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = mac.path.segments.first().map_or(1, |s| s.ident.span().start().line);
        // `crate::println!` names the module that exports `println`; resolved once every file is read.
        if segments.len() == 2 && segments[0] == "crate" {
            self.found.push((vec!["crate".into(), format!("{}!", segments[1])], line));
        }
        self.scan_tokens(mac.tokens.clone());
    }
}

/// Every leaf of a `use` tree as a list of segments, with its line. `use a::{self, b}` gives `a` and `a::b`.
fn flatten_use(tree: &syn::UseTree, mut prefix: Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
        }
        syn::UseTree::Name(n) => {
            let line = n.ident.span().start().line;
            if n.ident != "self" {
                prefix.push(n.ident.to_string());
            }
            out.push((prefix, line));
        }
        syn::UseTree::Rename(r) => {
            let line = r.ident.span().start().line;
            if r.ident != "self" {
                prefix.push(r.ident.to_string());
            }
            out.push((prefix, line));
        }
        syn::UseTree::Glob(g) => out.push((prefix, g.star_token.spans[0].start().line)),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                flatten_use(tree, prefix.clone(), out);
            }
        }
    }
}

/// The layer table, as the check uses it: unit path → (layer index, layer name).
struct Layers {
    units: BTreeMap<Vec<String>, (usize, &'static str)>,
}

impl Layers {
    fn new(table: &[(&'static str, &[&str])]) -> Layers {
        let mut units = BTreeMap::new();
        for (index, (name, modules)) in table.iter().enumerate() {
            for module in *modules {
                units.insert(module.split("::").map(String::from).collect(), (index, *name));
            }
        }
        Layers { units }
    }

    /// The unit a module belongs to: the longest table entry that is a prefix of its path.
    fn unit_of(&self, module: &[String]) -> Option<&Vec<String>> {
        (1..=module.len()).rev().find_map(|n| self.units.get_key_value(&module[..n]).map(|(k, _)| k))
    }
}

/// Checks `krate` against the layer table; returns every violation, sorted.
fn check_layers(krate: &Crate, table: &[(&'static str, &[&str])]) -> Vec<Violation> {
    let layers = Layers::new(table);
    let mut out = krate.problems.clone();
    let known: BTreeSet<&Vec<String>> = krate.modules.iter().map(|m| &m.path).collect();

    // Rule 1: every module is placed.
    for m in krate.modules.iter().filter(|m| !m.path.is_empty()) {
        if layers.unit_of(&m.path).is_none() {
            let line = parent_line(krate, &m.path);
            out.push(Violation {
                path: parent_file(krate, &m.path),
                line,
                message: format!("module `{}` is in no layer of the table", m.path.join("::")),
            });
        }
    }

    // Rule 2 and the graph for rule 3.
    let mut edges = Edges::new();
    for r in &krate.references {
        // The longest prefix of the target that is a module of the crate is the module it names.
        let Some(target) = (0..=r.to.len()).rev().map(|n| r.to[..n].to_vec()).find(|p| known.contains(p)) else {
            continue;
        };
        let (Some(from), Some(to)) = (layers.unit_of(&r.from), layers.unit_of(&target)) else { continue };
        if from == to || r.from.is_empty() {
            continue;
        }
        let (from_layer, from_name) = layers.units[from];
        let (to_layer, to_name) = layers.units[to];
        if to_layer > from_layer {
            out.push(Violation {
                path: r.file.clone(),
                line: r.line,
                message: format!(
                    "`{}` (layer {from_name}) names `{}` (layer {to_name}, above it)",
                    r.from.join("::"),
                    target.join("::")
                ),
            });
        }
        if to_layer == from_layer {
            edges.entry((from.clone(), to.clone())).or_insert((r.file.clone(), r.line));
        }
    }

    // Rule 3: cycles, as strongly connected components of the graph of paths within a layer (a cycle through
    // two layers has a path going up, reported above).
    for component in cycles(&edges) {
        let names: Vec<String> = component.iter().map(|u| u.join("::")).collect();
        for ((from, to), (file, line)) in &edges {
            if component.contains(from) && component.contains(to) {
                out.push(Violation {
                    path: file.clone(),
                    line: *line,
                    message: format!(
                        "`{}` names `{}`, in a cycle between {}",
                        from.join("::"),
                        to.join("::"),
                        names.join(", ")
                    ),
                });
            }
        }
    }

    // Rule 4: the root's `mod` list in layer order.
    if let Some(root) = krate.modules.iter().find(|m| m.path.is_empty()) {
        let mut highest: Option<(usize, &str)> = None;
        for (name, line) in &root.children {
            let Some((layer, layer_name)) = layers.unit_of(std::slice::from_ref(name)).map(|u| layers.units[u]) else {
                continue;
            };
            if let Some((top, top_name)) = highest
                && layer < top
            {
                out.push(Violation {
                    path: root.file.clone(),
                    line: *line,
                    message: format!(
                        "`mod {name};` (layer {layer_name}) comes after a module of layer {top_name}: list modules bottom to top"
                    ),
                });
            }
            highest = Some(highest.map_or((layer, layer_name), |h| if layer > h.0 { (layer, layer_name) } else { h }));
        }
    }

    out.sort();
    out.dedup();
    out
}

/// The file and line of the `mod` item that declares `module`.
fn parent_line(krate: &Crate, module: &[String]) -> usize {
    let (name, parent) = module.split_last().expect("not the root");
    krate
        .modules
        .iter()
        .find(|m| m.path == parent)
        .and_then(|p| p.children.iter().find(|(c, _)| c == name))
        .map_or(1, |(_, line)| *line)
}

fn parent_file(krate: &Crate, module: &[String]) -> PathBuf {
    let parent = &module[..module.len() - 1];
    krate.modules.iter().find(|m| m.path == parent).map_or_else(PathBuf::new, |m| m.file.clone())
}

/// Paths between units, each with the first place one was written.
type Edges = BTreeMap<(Vec<String>, Vec<String>), (PathBuf, usize)>;

/// The strongly connected components with more than one unit (Tarjan's algorithm).
fn cycles(edges: &Edges) -> Vec<BTreeSet<Vec<String>>> {
    let nodes: BTreeSet<&Vec<String>> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&Vec<String>> = nodes.into_iter().collect();
    let id = |n: &Vec<String>| nodes.iter().position(|m| *m == n).expect("a node of the graph");
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (a, b) in edges.keys() {
        next[id(a)].push(id(b));
    }
    struct Tarjan<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        found: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.counter);
            self.low[v] = self.counter;
            self.counter += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.next[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        next: &next,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        counter: 0,
        found: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.found.into_iter().map(|c| c.into_iter().map(|i| nodes[i].clone()).collect()).collect()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn report(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

#[test]
fn kernel_modules_obey_their_layers() {
    let krate = read_crate(&repo_root().join("kernel/src/main.rs"));
    assert!(krate.modules.len() > 20, "the kernel's modules were not found: {:?}", krate.problems);
    let violations = check_layers(&krate, KERNEL_LAYERS);
    assert!(violations.is_empty(), "{} layer violation(s):\n{}", violations.len(), report(&violations));
}

// ---------------------------------------------------------------------------------------------------------
// The check, proved on fixtures (tests/layer_fixtures/*/main.rs: plain files, never built).
// ---------------------------------------------------------------------------------------------------------

/// The fixtures' table: three layers, two units in the middle one.
const FIXTURE_LAYERS: &[(&str, &[&str])] =
    &[("bottom", &["low"]), ("middle", &["left", "right"]), ("top", &["high", "high::inner"])];

fn check_fixture(name: &str) -> Vec<String> {
    let krate = read_crate(&repo_root().join("tests/layer_fixtures").join(name).join("main.rs"));
    let root = repo_root().join("tests/layer_fixtures").join(name);
    check_layers(&krate, FIXTURE_LAYERS)
        .iter()
        .map(|v| format!("{}:{}: {}", v.path.strip_prefix(&root).unwrap_or(&v.path).display(), v.line, v.message))
        .collect()
}

#[test]
fn a_layered_fixture_passes() {
    assert_eq!(check_fixture("clean"), Vec::<String>::new());
}

#[test]
fn catches_an_upward_path_in_every_form() {
    let found = check_fixture("upward");
    let expected = [
        "low/nested.rs:4: `low::nested` (layer bottom) names `high::inner` (layer top, above it)",
        "low/nested.rs:6: `low::nested` (layer bottom) names `high` (layer top, above it)",
        "low.rs:3: `low` (layer bottom) names `high` (layer top, above it)",
        "low.rs:6: `low` (layer bottom) names `high` (layer top, above it)",
        "low.rs:9: `low` (layer bottom) names `left` (layer middle, above it)",
        "low.rs:10: `low` (layer bottom) names `high` (layer top, above it)",
    ];
    assert_eq!(found, expected, "got:\n{}", found.join("\n"));
}

#[test]
fn catches_a_cycle_within_a_layer() {
    let found = check_fixture("cycle");
    let expected = [
        "left.rs:3: `left` names `right`, in a cycle between left, right",
        "right.rs:3: `right` names `left`, in a cycle between left, right",
    ];
    assert_eq!(found, expected, "got:\n{}", found.join("\n"));
}

#[test]
fn catches_an_unplaced_module_and_a_misordered_root() {
    let found = check_fixture("unplaced");
    let expected = [
        "main.rs:2: `mod low;` (layer bottom) comes after a module of layer top: list modules bottom to top",
        "main.rs:3: module `stray` is in no layer of the table",
    ];
    assert_eq!(found, expected, "got:\n{}", found.join("\n"));
}
