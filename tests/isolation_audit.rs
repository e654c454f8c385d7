//! The isolation audit: DESIGN.md invariant 2, checked on the source of every untrusted crate.
//!
//! Plurality runs every SIP in ring 0 and isolates it by the type system alone, so a service that could write
//! `unsafe`, own a `static`, drop to assembly, link against a foreign symbol or place code at a chosen symbol
//! or section would escape its isolation. This host test parses every crate under `services/` plus
//! `contracts/` and `contracts/macros/`, and fails listing every violation as `path:line: what is wrong`:
//!
//! 1. the crate root (`src/lib.rs`, `src/main.rs`, `src/bin/*`) carries `#![forbid(unsafe_code)]` (`forbid`,
//!    not `deny`: `forbid` cannot be lifted again by an inner `#[allow]`);
//! 2. no `.rs` file under `src/` declares a `static` item (at module level, in function bodies, blocks,
//!    closures, or the token-level forms below), invokes `asm!`, `global_asm!` or `naked_asm!` (by any path,
//!    or imports them under another name), declares an `extern` block, or carries `#[no_mangle]`,
//!    `#[link_section]` or `#[export_name]`, also in the Rust 2024 `#[unsafe(..)]` form and inside
//!    `#[cfg_attr(..)]`;
//! 3. `[dependencies]`, `[build-dependencies]` and their `[target.*]` forms name only allowlisted packages
//!    (renamed dependencies are checked by their real `package`). Build dependencies count because code they
//!    generate reaches the kernel without ever being parsed here; dev-dependencies do not, as they never reach
//!    the kernel;
//! 4. every crate under `services/` is linked into the kernel: a dependency in `kernel/Cargo.toml` and a
//!    `use <crate> as _;` line in `kernel/src/services.rs`. Its manifest reaches the kernel through a linkme
//!    slice, which is silently empty for a crate nothing names (boot-facts.md), so a forgotten line would
//!    make a service vanish without any error;
//! 5. no source names an implementation detail of the trusted crates: no identifier starting with `__` (the
//!    plumbing `contract!`, `#[derive(Exchangeable)]` and `sip!` generate, such as `__visit`, `__raw` or
//!    `sip_runtime::__private`), and no path into `channels::platform`, `channels::trusted`,
//!    `channels::ledger` or `channels::host` (the platform's side of the channel runtime). The compiler already
//!    refuses the harmful uses (the plumbing takes tokens a service cannot make, the traits are `unsafe`);
//!    this rule keeps service code from leaning on them at all;
//! 6. no two manifests (`sip! { name: "..." }`) in different places share a name: the kernel's policy and the
//!    console know services by name, and the kernel refuses to boot with a duplicate.
//!
//! Parsing is done with `syn`, not by grepping: a comment or string mentioning `static` is no violation, and a
//! `static` split over lines is still one. Token streams that syn cannot parse (the bodies of `macro_rules!`
//! definitions and the arguments of macro invocations) are scanned token by token for the same forms, since
//! a service's own macro could otherwise carry a `static` past the audit.
//!
//! Not checked, by design: what macros *expand to*. syn sees source, not expansions, and that is intended:
//! the sanctioned registration macro `sip_runtime::sip!` expands to a `static` (the manifest's linkme slice
//! entry), but that static is written inside the macro of `sip-runtime`, a trusted crate outside this
//! audit, so the service's own source stays free of it. Also not checked: files outside `src/` pulled in by
//! `#[path]` or `include!`, and build scripts themselves (no service has or needs one).
//!
//! The checks are functions taking a crate directory and returning the violations, so the tests at the end of
//! this file can prove each one fails on a fixture under `tests/audit_fixtures/` (plain files, never built).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{AttrStyle, Meta, Token};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What a service may depend on (DESIGN.md, "Crates and what each may do").
const SERVICE_DEPS: &[&str] = &["sip-runtime", "contracts", "channels", "hashbrown"];
/// What `contracts/` may depend on: the channel runtime and its own proc-macro crate.
const CONTRACTS_DEPS: &[&str] = &["channels", "contracts-macros"];
/// What `contracts/macros/` may depend on: the usual proc-macro toolkit, which runs on the host only.
const CONTRACTS_MACROS_DEPS: &[&str] = &["syn", "quote", "proc-macro2"];

/// Macros that emit machine code directly.
const ASM_MACROS: &[&str] = &["asm", "global_asm", "naked_asm"];
/// Attributes that pick a symbol name or a section: the ways to collide with or hook kernel symbols.
const LINKER_ATTRIBUTES: &[&str] = &["no_mangle", "link_section", "export_name"];
/// Modules of `channels` that only the trusted base uses.
const TRUSTED_ONLY_MODULES: &[&str] = &["platform", "trusted", "ledger", "host"];

/// One broken rule, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    path: PathBuf,
    line: usize,
    message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths relative to the repository read better in a failure and are clickable in most terminals.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = self.path.strip_prefix(root).unwrap_or(&self.path);
        write!(f, "{}:{}: {}", path.display(), self.line, self.message)
    }
}

fn violation(path: &Path, line: usize, message: impl Into<String>) -> Violation {
    Violation { path: path.to_owned(), line, message: message.into() }
}

// ---------------------------------------------------------------------------------------------------------
// Sources: rules 1 and 2.
// ---------------------------------------------------------------------------------------------------------

/// Checks every `.rs` file under `crate_dir/src`: `#![forbid(unsafe_code)]` on each crate root, and no
/// `static`, assembly, `extern` block or linker attribute anywhere.
fn check_sources(crate_dir: &Path) -> Vec<Violation> {
    check_sources_with(crate_dir, false)
}

/// [`check_sources`], with rule 5 off when `internals_allowed` (for `contracts/macros`, which generates the
/// plumbing rule 5 keeps services from naming).
fn check_sources_with(crate_dir: &Path, internals_allowed: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let src = crate_dir.join("src");
    let roots = crate_roots(crate_dir);
    if roots.is_empty() {
        out.push(violation(&crate_dir.join("Cargo.toml"), 1, "no crate root found (src/lib.rs or src/main.rs)"));
    }
    for file in rust_files(&src) {
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                out.push(violation(&file, 1, format!("cannot read: {e}")));
                continue;
            }
        };
        let ast = match syn::parse_file(&text) {
            Ok(ast) => ast,
            Err(e) => {
                // An unparsable file cannot be audited, so it is a violation rather than something to skip.
                out.push(violation(&file, e.span().start().line, format!("cannot parse: {e}")));
                continue;
            }
        };
        if roots.contains(&file) && !forbids_unsafe_code(&ast) {
            out.push(violation(&file, 1, "crate root lacks `#![forbid(unsafe_code)]`"));
        }
        SourceVisitor { file: &file, out: &mut out, internals_allowed }.visit_file(&ast);
    }
    out
}

/// The crate roots that exist: the library (default or `[lib] path`), the default binary, and `src/bin/*`.
fn crate_roots(crate_dir: &Path) -> Vec<PathBuf> {
    let src = crate_dir.join("src");
    let mut roots = vec![src.join("lib.rs"), src.join("main.rs")];
    let manifest = fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    if let Ok(doc) = DeTable::parse(&manifest)
        && let Some(path) = lookup(doc.get_ref(), &["lib", "path"]).and_then(|v| v.get_ref().as_str())
    {
        roots.push(crate_dir.join(path));
    }
    if let Ok(entries) = fs::read_dir(src.join("bin")) {
        for entry in entries.flatten() {
            let path = entry.path();
            roots.push(if path.is_dir() { path.join("main.rs") } else { path });
        }
    }
    roots.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "rs"));
    roots.sort();
    roots.dedup();
    roots
}

/// Every `.rs` file under `dir`, recursively, in a stable order (so failures list the same way every run).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Whether the file has the inner attribute `#![forbid(unsafe_code)]` (possibly among other lints). A
/// `#![cfg_attr(.., forbid(unsafe_code))]` does not count: it would not hold in every configuration.
fn forbids_unsafe_code(file: &syn::File) -> bool {
    file.attrs.iter().any(|attr| {
        matches!(attr.style, AttrStyle::Inner(_))
            && attr.path().is_ident("forbid")
            && attr
                .parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
                .is_ok_and(|lints| lints.iter().any(|lint| lint.is_ident("unsafe_code")))
    })
}

/// Walks a file's syntax tree and records every forbidden construct.
struct SourceVisitor<'a> {
    file: &'a Path,
    out: &'a mut Vec<Violation>,
    /// Rule 5 does not apply (the proc-macro crate writes the plumbing it generates).
    internals_allowed: bool,
}

impl SourceVisitor<'_> {
    fn report(&mut self, span: Span, message: impl Into<String>) {
        self.out.push(violation(self.file, span.start().line, message));
    }

    /// [`Self::report`] for rule 5, which the proc-macro crate is exempt from.
    fn report_internal(&mut self, span: Span, message: impl Into<String>) {
        if !self.internals_allowed {
            self.report(span, message);
        }
    }

    /// Checks one attribute's meta, looking through `unsafe(..)` (Rust 2024) and `cfg_attr(pred, ..)`.
    fn check_meta(&mut self, meta: &Meta, span: Span) {
        let path = meta.path();
        if let Some(name) = LINKER_ATTRIBUTES.iter().find(|name| path.is_ident(name)) {
            self.report(span, format!("`#[{name}]` attribute: SIPs may not choose symbol names or sections"));
            return;
        }
        let is_unsafe = path.is_ident("unsafe");
        let is_cfg_attr = path.is_ident("cfg_attr");
        if !is_unsafe && !is_cfg_attr {
            return;
        }
        let Meta::List(list) = meta else { return };
        let Ok(inner) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else { return };
        // `cfg_attr`'s first argument is the predicate, not an attribute.
        for meta in inner.iter().skip(usize::from(is_cfg_attr)) {
            self.check_meta(meta, span);
        }
    }

    /// Scans tokens syn could not parse as Rust (macro bodies and arguments, verbatim items) for the same
    /// forms: a `static` keyword (not the `'static` lifetime), `asm!`-family invocations, `extern` blocks and
    /// linker attributes.
    fn scan_tokens(&mut self, tokens: &TokenStream) {
        let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| &tokens[p]);
            let next = tokens.get(i + 1);
            match token {
                TokenTree::Ident(ident) if ident.to_string().starts_with("__") => {
                    self.report_internal(ident.span(), format!("`{ident}` (in macro tokens): {INTERNALS}"));
                }
                TokenTree::Ident(ident) if ident == "static" => {
                    let is_lifetime = matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == '\'');
                    if !is_lifetime {
                        self.report(
                            ident.span(),
                            "`static` (in macro or unparsed tokens): SIPs may not own global state",
                        );
                    }
                }
                TokenTree::Ident(ident)
                    if ASM_MACROS.iter().any(|m| ident == m)
                        && matches!(next, Some(TokenTree::Punct(p)) if p.as_char() == '!') =>
                {
                    self.report(ident.span(), format!("`{ident}!` (in macro tokens): SIPs may not use assembly"));
                }
                TokenTree::Ident(ident) if ident == "extern" => {
                    // `extern { .. }` or `extern "C" { .. }`; `extern crate` and `extern "C" fn` are fine.
                    let after_abi = match next {
                        Some(TokenTree::Literal(_)) => tokens.get(i + 2),
                        other => other,
                    };
                    if matches!(after_abi, Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace) {
                        self.report(
                            ident.span(),
                            "`extern` block (in macro tokens): SIPs may not link to foreign code",
                        );
                    }
                }
                TokenTree::Punct(p) if p.as_char() == '#' => {
                    // `#[..]` or `#![..]`: parse the bracket's content as an attribute's meta.
                    let bracket = match next {
                        Some(TokenTree::Punct(bang)) if bang.as_char() == '!' => tokens.get(i + 2),
                        other => other,
                    };
                    if let Some(TokenTree::Group(g)) = bracket
                        && g.delimiter() == Delimiter::Bracket
                        && let Ok(meta) = syn::parse2::<Meta>(g.stream())
                    {
                        self.check_meta(&meta, p.span());
                    }
                }
                TokenTree::Group(group) => self.scan_tokens(&group.stream()),
                _ => {}
            }
        }
    }
}

/// Why rule 5 refuses a name.
const INTERNALS: &str = "names an implementation detail of a trusted crate (services use only the public API)";

impl SourceVisitor<'_> {
    /// Rule 5 for a path given as its segments: `__` names, and `channels::<trusted-only module>`.
    fn check_path_segments(&mut self, segments: &[(String, Span)]) {
        for (i, (name, span)) in segments.iter().enumerate() {
            if name.starts_with("__") {
                self.report_internal(*span, format!("`{name}`: {INTERNALS}"));
            }
            if name == "channels"
                && let Some((next, span)) = segments.get(i + 1)
                && TRUSTED_ONLY_MODULES.contains(&next.as_str())
            {
                self.report_internal(*span, format!("`channels::{next}`: only the trusted base uses this module"));
            }
        }
    }

    /// Rule 5 for a `use` tree, with the path leading to it.
    fn check_use_tree(&mut self, prefix: &mut Vec<(String, Span)>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push((p.ident.to_string(), p.ident.span()));
                self.check_use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.check_use_leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.check_use_leaf(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.check_path_segments(prefix),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.check_use_tree(prefix, tree);
                }
            }
        }
    }

    fn check_use_leaf(&mut self, prefix: &mut Vec<(String, Span)>, ident: &syn::Ident) {
        prefix.push((ident.to_string(), ident.span()));
        self.check_path_segments(prefix);
        prefix.pop();
    }
}

impl<'ast> Visit<'ast> for SourceVisitor<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<(String, Span)> =
            path.segments.iter().map(|s| (s.ident.to_string(), s.ident.span())).collect();
        self.check_path_segments(&segments);
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.check_use_tree(&mut Vec::new(), &item.tree);
        visit::visit_item_use(self, item);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if call.method.to_string().starts_with("__") {
            self.report_internal(call.method.span(), format!("`.{}()`: {INTERNALS}", call.method));
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if item.sig.ident.to_string().starts_with("__") {
            self.report_internal(item.sig.ident.span(), format!("`fn {}`: {INTERNALS}", item.sig.ident));
        }
        visit::visit_impl_item_fn(self, item);
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        self.report(item.static_token.span, format!("`static {}`: SIPs may not own global state", item.ident));
        visit::visit_item_static(self, item);
    }

    fn visit_item_foreign_mod(&mut self, item: &'ast syn::ItemForeignMod) {
        self.report(item.abi.extern_token.span, "`extern` block: SIPs may not link to foreign code");
        visit::visit_item_foreign_mod(self, item);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(last) = mac.path.segments.last()
            && ASM_MACROS.iter().any(|m| last.ident == m)
        {
            self.report(last.ident.span(), format!("`{}!`: SIPs may not use assembly", last.ident));
        }
        // Includes `macro_rules!` bodies, whose `static`s would otherwise appear only after expansion.
        self.scan_tokens(&mac.tokens);
        visit::visit_macro(self, mac);
    }

    fn visit_use_name(&mut self, name: &'ast syn::UseName) {
        // `use core::arch::asm as a;` would make a later `a!(..)` invisible to `visit_macro`.
        if ASM_MACROS.iter().any(|m| name.ident == m) {
            self.report(name.ident.span(), format!("imports `{}`: SIPs may not use assembly", name.ident));
        }
    }

    fn visit_use_rename(&mut self, rename: &'ast syn::UseRename) {
        if ASM_MACROS.iter().any(|m| rename.ident == m) {
            self.report(rename.ident.span(), format!("imports `{}`: SIPs may not use assembly", rename.ident));
        }
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        self.check_meta(&attr.meta, attr.pound_token.span);
    }

    // syn keeps what it accepts but does not model as verbatim tokens, e.g. `static X: u8;` without a value
    // (module level or in a block). A `static` inside an `impl` or `trait` is a syn parse error, which
    // `check_sources` reports as a violation of its own.
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if let syn::Item::Verbatim(tokens) = item {
            self.scan_tokens(tokens);
        }
        visit::visit_item(self, item);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Manifests: rules 3 and 4.
// ---------------------------------------------------------------------------------------------------------

/// A parsed `Cargo.toml`, kept with its text to turn byte spans into line numbers.
struct Manifest {
    path: PathBuf,
    text: String,
}

impl Manifest {
    fn read(path: &Path) -> Result<Self, Violation> {
        let text = fs::read_to_string(path).map_err(|e| violation(path, 1, format!("cannot read: {e}")))?;
        Ok(Manifest { path: path.to_owned(), text })
    }

    fn parse(&self) -> Result<Spanned<DeTable<'_>>, Violation> {
        DeTable::parse(&self.text).map_err(|e| {
            let line = e.span().map_or(1, |s| self.line(s.start));
            violation(&self.path, line, format!("cannot parse: {}", e.message()))
        })
    }

    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }
}

/// The value at a path of keys in a table, if every step exists.
fn lookup<'a, 'i>(table: &'a DeTable<'i>, keys: &[&str]) -> Option<&'a Spanned<DeValue<'i>>> {
    let (first, rest) = keys.split_first()?;
    let value = table.get(*first)?;
    if rest.is_empty() { Some(value) } else { lookup(value.get_ref().as_table()?, rest) }
}

/// One dependency entry: the key it is written under, the package it really is, and its line.
struct Dependency {
    key: String,
    package: String,
    line: usize,
}

/// Every entry of the dependency tables that reach the kernel: `[dependencies]`, `[build-dependencies]`
/// and their `[target.'cfg(..)'.*]` forms (dev-dependencies are left out on purpose).
fn kernel_reaching_dependencies(manifest: &Manifest, doc: &DeTable<'_>) -> Vec<Dependency> {
    const TABLES: &[&str] = &["dependencies", "build-dependencies", "build_dependencies"];
    let mut tables: Vec<&DeTable<'_>> = TABLES.iter().filter_map(|t| doc.get(*t)?.get_ref().as_table()).collect();
    if let Some(targets) = doc.get("target").and_then(|t| t.get_ref().as_table()) {
        for (_, target) in targets.iter() {
            let Some(target) = target.get_ref().as_table() else { continue };
            tables.extend(TABLES.iter().filter_map(|t| target.get(*t)?.get_ref().as_table()));
        }
    }
    let mut deps = Vec::new();
    for table in tables {
        for (key, value) in table.iter() {
            let key_str = key.get_ref().to_string();
            let package = real_package(manifest, &key_str, value.get_ref());
            deps.push(Dependency { key: key_str, package, line: manifest.line(key.span().start) });
        }
    }
    deps
}

/// The package a dependency entry really names: its `package` key if renamed, else the workspace entry's
/// `package` if inherited (`foo.workspace = true`), else the key itself.
fn real_package(manifest: &Manifest, key: &str, value: &DeValue<'_>) -> String {
    let Some(entry) = value.as_table() else { return key.to_owned() };
    if let Some(package) = entry.get("package").and_then(|p| p.get_ref().as_str()) {
        return package.to_owned();
    }
    if entry.get("workspace").and_then(|w| w.get_ref().as_bool()) == Some(true)
        && let Some(package) = workspace_package(&manifest.path, key)
    {
        return package;
    }
    key.to_owned()
}

/// `[workspace.dependencies.<key>].package` from the nearest enclosing workspace root, if any.
fn workspace_package(manifest_path: &Path, key: &str) -> Option<String> {
    for dir in manifest_path.parent()?.ancestors().skip(1) {
        let Ok(root) = Manifest::read(&dir.join("Cargo.toml")) else { continue };
        let Ok(doc) = root.parse() else { continue };
        if doc.get_ref().get("workspace").is_some() {
            let entry = lookup(doc.get_ref(), &["workspace", "dependencies", key])?;
            return entry.get_ref().as_table()?.get("package")?.get_ref().as_str().map(str::to_owned);
        }
    }
    None
}

/// Checks that every kernel-reaching dependency of the crate at `crate_dir` is a package in `allowed`.
fn check_dependencies(crate_dir: &Path, allowed: &[&str]) -> Vec<Violation> {
    let manifest = match Manifest::read(&crate_dir.join("Cargo.toml")) {
        Ok(m) => m,
        Err(v) => return vec![v],
    };
    let doc = match manifest.parse() {
        Ok(doc) => doc,
        Err(v) => return vec![v],
    };
    kernel_reaching_dependencies(&manifest, doc.get_ref())
        .into_iter()
        .filter(|dep| !allowed.contains(&dep.package.as_str()))
        .map(|dep| {
            let what = if dep.key == dep.package {
                format!("dependency `{}`", dep.key)
            } else {
                format!("dependency `{}` (package `{}`)", dep.key, dep.package)
            };
            violation(&manifest.path, dep.line, format!("{what} is not on the allowlist {{{}}}", allowed.join(", ")))
        })
        .collect()
}

/// The `[package] name` of the crate at `crate_dir`.
fn package_name(crate_dir: &Path) -> Result<String, Violation> {
    let manifest = Manifest::read(&crate_dir.join("Cargo.toml"))?;
    let doc = manifest.parse()?;
    lookup(doc.get_ref(), &["package", "name"])
        .and_then(|name| name.get_ref().as_str())
        .map(str::to_owned)
        .ok_or_else(|| violation(&manifest.path, 1, "no `[package] name`"))
}

/// Checks that the service at `service_dir` is linked into the kernel at `kernel_dir`: a dependency in its
/// `Cargo.toml` and a `use <crate> as _;` in its `src/services.rs`. Failures name the exact line to add.
fn check_linked(kernel_dir: &Path, service_dir: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    let name = match package_name(service_dir) {
        Ok(name) => name,
        Err(v) => return vec![v],
    };
    let manifest = match Manifest::read(&kernel_dir.join("Cargo.toml")) {
        Ok(m) => m,
        Err(v) => return vec![v],
    };
    let doc = match manifest.parse() {
        Ok(doc) => doc,
        Err(v) => return vec![v],
    };
    let deps = doc.get_ref().get("dependencies").and_then(|d| d.get_ref().as_table());
    // The name the kernel's code knows the crate by: the dependency key, which may differ from the package.
    let mut crate_name = name.replace('-', "_");
    match deps.and_then(|deps| deps.iter().find(|(k, v)| real_package(&manifest, k.get_ref(), v.get_ref()) == name)) {
        Some((key, _)) => crate_name = key.get_ref().replace('-', "_"),
        None => {
            // Point at the last dependency: the service lines are appended at the end of the table.
            let line = deps
                .and_then(|d| d.iter().map(|(k, _)| manifest.line(k.span().start)).max())
                .unwrap_or_else(|| manifest.text.lines().count());
            let path = relative_path(kernel_dir, service_dir);
            out.push(violation(
                &manifest.path,
                line,
                format!(
                    "service `{name}` is not linked into the kernel: add the line `{name} = {{ path = \"{path}\" }}` \
                     to [dependencies] in this file"
                ),
            ));
        }
    }

    let services_rs = kernel_dir.join("src").join("services.rs");
    let text = match fs::read_to_string(&services_rs) {
        Ok(text) => text,
        Err(e) => {
            out.push(violation(&services_rs, 1, format!("cannot read: {e}")));
            return out;
        }
    };
    let ast = match syn::parse_file(&text) {
        Ok(ast) => ast,
        Err(e) => {
            out.push(violation(&services_rs, e.span().start().line, format!("cannot parse: {e}")));
            return out;
        }
    };
    let mut last_use_line = None;
    let mut found = false;
    for item in &ast.items {
        if let syn::Item::Use(item) = item
            && let syn::UseTree::Rename(rename) = &item.tree
            && rename.rename == "_"
        {
            last_use_line = Some(item.use_token.span.start().line);
            found |= rename.ident == crate_name;
        }
    }
    if !found {
        out.push(violation(
            &services_rs,
            last_use_line.unwrap_or(1),
            format!(
                "service `{name}` is not named by the kernel, so the linker drops its manifest: add the line \
                 `use {crate_name} as _;` to this file"
            ),
        ));
    }
    out
}

/// `to` relative to `from`, with `/` separators, as Cargo's `path = ".."` wants it.
fn relative_path(from: &Path, to: &Path) -> String {
    let from = from.canonicalize().unwrap_or_else(|_| from.to_owned());
    let to = to.canonicalize().unwrap_or_else(|_| to.to_owned());
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    let ups = from.components().count() - common;
    let parts: Vec<String> = std::iter::repeat_n("..".to_owned(), ups)
        .chain(to.components().skip(common).map(|c| c.as_os_str().to_string_lossy().into_owned()))
        .collect();
    parts.join("/")
}

// ---------------------------------------------------------------------------------------------------------
// Manifest names: rule 6.
// ---------------------------------------------------------------------------------------------------------

/// One `sip!` manifest's name and where it is written.
struct ManifestName {
    name: String,
    path: PathBuf,
    line: usize,
}

/// Collects the `name: "..."` of every `sip!` invocation in a file.
struct ManifestNames<'a> {
    file: &'a Path,
    out: &'a mut Vec<ManifestName>,
}

impl<'ast> Visit<'ast> for ManifestNames<'_> {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if mac.path.segments.last().is_some_and(|s| s.ident == "sip") {
            let tokens: Vec<TokenTree> = mac.tokens.clone().into_iter().collect();
            for window in tokens.windows(3) {
                if let [TokenTree::Ident(key), TokenTree::Punct(colon), TokenTree::Literal(value)] = window
                    && key == "name"
                    && colon.as_char() == ':'
                {
                    let name = value.to_string().trim_matches('"').to_owned();
                    let line = value.span().start().line;
                    self.out.push(ManifestName { name, path: self.file.to_owned(), line });
                }
            }
        }
        visit::visit_macro(self, mac);
    }
}

/// Every manifest name declared under `crate_dir/src`.
fn manifest_names(crate_dir: &Path) -> Vec<ManifestName> {
    let mut out = Vec::new();
    for file in rust_files(&crate_dir.join("src")) {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let Ok(ast) = syn::parse_file(&text) else { continue };
        ManifestNames { file: &file, out: &mut out }.visit_file(&ast);
    }
    out
}

/// Rule 6: a violation at every manifest whose name an earlier one (in crate order) already has.
fn check_unique_names(crates: &[PathBuf]) -> Vec<Violation> {
    let all: Vec<ManifestName> = crates.iter().flat_map(|dir| manifest_names(dir)).collect();
    let mut out = Vec::new();
    for (i, m) in all.iter().enumerate() {
        if let Some(first) = all[..i].iter().find(|o| o.name == m.name) {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let first_at = first.path.strip_prefix(root).unwrap_or(&first.path).display().to_string();
            out.push(violation(
                &m.path,
                m.line,
                format!("a second service named \"{}\" (the first is at {first_at}:{})", m.name, first.line),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// The audit of the real tree.
// ---------------------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `services/*/` directory with a `Cargo.toml`, sorted.
fn service_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("services"))
        .expect("services/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn untrusted_crates_keep_invariant_2() {
    let root = repo_root();
    let services = service_dirs(&root);
    // An empty list would make the audit pass vacuously (a moved directory, a broken path).
    assert!(!services.is_empty(), "no crate found under services/: the audit would check nothing");

    let mut violations = Vec::new();
    for service in &services {
        violations.extend(check_sources(service));
        violations.extend(check_dependencies(service, SERVICE_DEPS));
        violations.extend(check_linked(&root.join("kernel"), service));
    }
    let contracts = root.join("contracts");
    violations.extend(check_sources(&contracts));
    violations.extend(check_dependencies(&contracts, CONTRACTS_DEPS));
    let macros = contracts.join("macros");
    violations.extend(check_sources_with(&macros, true));
    violations.extend(check_dependencies(&macros, CONTRACTS_MACROS_DEPS));
    violations.extend(check_unique_names(&services));

    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{} isolation violation(s) (DESIGN.md invariant 2):\n{}",
        violations.len(),
        list.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------
// The checker can fail: one fixture per violation class, each reported at its file and line.
// ---------------------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("audit_fixtures").join(name)
}

/// Everything the audit checks on a service crate except its linking into the kernel.
fn audit_fixture(name: &str) -> Vec<Violation> {
    let dir = fixture(name);
    assert!(dir.join("Cargo.toml").is_file(), "fixture {} is missing", dir.display());
    let mut violations = check_sources(&dir);
    violations.extend(check_dependencies(&dir, SERVICE_DEPS));
    violations
}

/// Asserts the fixture yields exactly the expected violations, given sorted by file then line: (file
/// relative to the fixture, line, a piece of the message).
fn assert_violations(name: &str, expected: &[(&str, usize, &str)]) {
    let mut found = audit_fixture(name);
    found.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let dir = fixture(name);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "fixture {name}: expected {expected:?}, found:\n{}", shown.join("\n"));
    for (v, (file, line, needle)) in found.iter().zip(expected) {
        assert_eq!(v.path, dir.join(file), "fixture {name}: wrong file in {v}");
        assert_eq!(v.line, *line, "fixture {name}: wrong line in {v}");
        assert!(v.message.contains(needle), "fixture {name}: {v} does not mention {needle:?}");
    }
}

#[test]
fn clean_fixture_passes() {
    assert_violations("clean", &[]);
}

#[test]
fn reports_missing_forbid() {
    assert_violations("missing_forbid", &[("src/lib.rs", 1, "#![forbid(unsafe_code)]")]);
}

#[test]
fn reports_module_level_static() {
    assert_violations("static_module", &[("src/lib.rs", 6, "`static COUNTER`")]);
}

#[test]
fn reports_static_inside_fn() {
    assert_violations("static_in_fn", &[("src/worker.rs", 7, "`static CALLS`")]);
}

#[test]
fn reports_asm() {
    assert_violations("asm", &[("src/lib.rs", 8, "`asm!`")]);
}

#[test]
fn reports_extern_block() {
    assert_violations("extern_block", &[("src/lib.rs", 5, "`extern` block")]);
}

#[test]
fn reports_no_mangle() {
    assert_violations("no_mangle", &[("src/lib.rs", 5, "`#[no_mangle]`")]);
}

#[test]
fn reports_unsafe_no_mangle() {
    assert_violations("unsafe_no_mangle", &[("src/lib.rs", 5, "`#[no_mangle]`")]);
}

#[test]
fn reports_link_section() {
    assert_violations("link_section", &[("src/lib.rs", 5, "`#[link_section]`")]);
}

#[test]
fn reports_export_name() {
    assert_violations("export_name", &[("src/lib.rs", 5, "`#[export_name]`")]);
}

#[test]
fn reports_non_allowlisted_dependency() {
    assert_violations("bad_dependency", &[("Cargo.toml", 10, "dependency `log`")]);
}

#[test]
fn reports_renamed_non_allowlisted_dependency() {
    // The key `channels` is allowlisted; the package behind it is not.
    assert_violations("renamed_dependency", &[("Cargo.toml", 10, "dependency `channels` (package `spin`)")]);
}

/// The forms syn does not model directly: tokens in `macro_rules!`, attributes behind `cfg_attr` and
/// `unsafe`, an import of `asm` under another name, a `static` without a value, and a build dependency.
#[test]
fn reports_hidden_forms() {
    assert_violations(
        "hidden_forms",
        &[
            ("Cargo.toml", 13, "dependency `cc`"),
            ("src/lib.rs", 6, "imports `asm`"),
            ("src/lib.rs", 9, "`static` (in macro or unparsed tokens)"),
            ("src/lib.rs", 14, "`#[export_name]`"),
            ("src/lib.rs", 18, "`static` (in macro or unparsed tokens)"),
        ],
    );
}

/// Rule 5: plumbing names (`__…`) and the trusted-only modules of `channels`, in paths, `use` trees, method
/// calls, impls and macro tokens.
#[test]
fn reports_trusted_internals() {
    assert_violations(
        "trusted_internals",
        &[
            ("src/lib.rs", 7, "`channels::platform`"),
            ("src/lib.rs", 8, "`channels::ledger`"),
            ("src/lib.rs", 8, "`channels::trusted`"),
            ("src/lib.rs", 12, "`__raw`"),
            ("src/lib.rs", 13, "`.__visit()`"),
            ("src/lib.rs", 14, "`__TRACKED`"),
            ("src/lib.rs", 17, "`__private`"),
        ],
    );
}

/// Rule 6: the second of two manifests with one name is reported, naming the first.
#[test]
fn reports_a_duplicate_service_name() {
    let violations = check_unique_names(&[fixture("clean"), fixture("duplicate_name")]);
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(violations.len(), 1, "found:\n{}", shown.join("\n"));
    assert_eq!(violations[0].path, fixture("duplicate_name").join("src/lib.rs"));
    assert!(violations[0].message.contains("a second service named \"clean\""), "{}", violations[0]);
    assert!(check_unique_names(&[fixture("clean")]).is_empty());
}

#[test]
fn reports_unlinked_service_with_the_lines_to_add() {
    let violations = check_linked(&fixture("kernel_unlinked"), &fixture("clean"));
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(violations.len(), 2, "found:\n{}", shown.join("\n"));
    let (manifest, services) = (&violations[0], &violations[1]);
    assert_eq!(manifest.path, fixture("kernel_unlinked").join("Cargo.toml"));
    assert_eq!(manifest.line, 9, "{manifest}");
    assert!(manifest.message.contains("add the line `clean-service = { path = \"../clean\" }`"), "{manifest}");
    assert_eq!(services.path, fixture("kernel_unlinked").join("src/services.rs"));
    assert_eq!(services.line, 4, "{services}");
    assert!(services.message.contains("add the line `use clean_service as _;`"), "{services}");
}

#[test]
fn linked_service_passes() {
    let violations = check_linked(&fixture("kernel_linked"), &fixture("clean"));
    assert!(violations.is_empty(), "{violations:?}");
}
