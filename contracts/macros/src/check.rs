//! Well-formedness of a contract, checked at expansion, and the ring capacities that follow from it.
//!
//! Errors (each pointing at the offending name): duplicate message or state, no or several initial states,
//! unknown message or state in a transition, a message listed twice in one state, a state where both sides may
//! send (a race), a terminal state with transitions, a non-terminal state with no way out, a state unreachable
//! from the initial one, a message no state uses, and a cycle whose messages all go one way (Sing#'s
//! bounded-queue rule), a Sing# direction mark (`Msg?`, `Msg!`) that contradicts the message's declaration, a
//! message whose parameters are partly named, named twice or named `endpoint` (the receive variants' field for
//! the endpoint in its next state), and a payload that borrows or points (`&T`, `*const T`, `fn()`, `dyn T`, a
//! lifetime): such a type can never travel, and rejecting it here gives one error at the type instead of the
//! compiler's lifetime errors. All errors are reported together.
//!
//! Capacity: with every one-way cycle rejected, the transitions of one direction form a DAG; the longest path in
//! it is the longest run of messages one side can send before it must wait for the other, which bounds the
//! messages in flight that way (the receiver only answers after draining the run).

use crate::parse::{ContractDef, Dir};
use quote::ToTokens;
use std::collections::HashMap;
use syn::spanned::Spanned;

/// One resolved transition.
pub struct Edge {
    pub message: usize,
    pub next: usize,
}

/// A well-formed contract's resolved graph.
pub struct Analysis {
    pub initial: usize,
    /// Per state, its transitions in declaration order.
    pub edges: Vec<Vec<Edge>>,
    /// Per state, who sends in it (`None` for terminal states).
    pub sender: Vec<Option<Dir>>,
    /// Most client-to-server messages in flight.
    pub in_capacity: usize,
    /// Most server-to-client messages in flight.
    pub out_capacity: usize,
}

/// Collects errors so that a contract's every problem is reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

pub fn check(def: &ContractDef) -> syn::Result<Analysis> {
    let mut errors = Errors::default();

    let mut message_index = HashMap::new();
    for (i, message) in def.messages.iter().enumerate() {
        if message_index.insert(message.name.to_string(), i).is_some() {
            errors.push(message.name.span(), format_args!("message `{}` is declared twice", message.name));
        }
    }
    for message in &def.messages {
        check_parameters(message, &mut errors);
    }
    let mut state_index = HashMap::new();
    for (i, state) in def.states.iter().enumerate() {
        if state_index.insert(state.name.to_string(), i).is_some() {
            errors.push(state.name.span(), format_args!("state `{}` is declared twice", state.name));
        }
    }
    if def.states.is_empty() {
        errors.push(def.name.span(), "a contract needs at least one state");
        return errors.finish().map(|()| unreachable_analysis());
    }

    let initials: Vec<usize> =
        def.states.iter().enumerate().filter(|(_, s)| s.initial.is_some()).map(|(i, _)| i).collect();
    if let [_, rest @ ..] = initials.as_slice() {
        for &i in rest {
            let span = def.states[i].initial.unwrap_or_else(|| def.states[i].name.span());
            errors.push(span, "a contract has exactly one `initial` state");
        }
    }
    // Without an `initial` marker the first state declared is the initial one.
    let initial = initials.first().copied().unwrap_or(0);

    let mut edges: Vec<Vec<Edge>> = Vec::with_capacity(def.states.len());
    let mut sender = Vec::with_capacity(def.states.len());
    let mut used = vec![false; def.messages.len()];
    for state in &def.states {
        let mut resolved = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut first_of: [Option<usize>; 2] = [None, None];
        for transition in &state.transitions {
            let message = message_index.get(&transition.message.to_string()).copied();
            let next = state_index.get(&transition.next.to_string()).copied();
            if message.is_none() {
                errors.push(
                    transition.message.span(),
                    format_args!(
                        "unknown message `{}`: declare it with `in message` or `out message`",
                        transition.message
                    ),
                );
            }
            if next.is_none() {
                errors.push(transition.next.span(), format_args!("unknown state `{}`", transition.next));
            }
            if let Some(message) = message {
                used[message] = true;
                let declared = def.messages[message].dir;
                if let Some((marked, span)) = transition.mark
                    && marked != declared
                {
                    let (sender, receiver, mark) = match declared {
                        Dir::In => ("client", "server", '?'),
                        Dir::Out => ("server", "client", '!'),
                    };
                    errors.push(
                        span,
                        format_args!(
                            "`{name}` is an `{}` message (the {sender} sends it, the {receiver} receives it): its \
                             Sing# mark is `{name}{mark}` (or write no mark)",
                            declared.keyword(),
                            name = transition.message,
                        ),
                    );
                }
            }
            if seen.insert(transition.message.to_string(), 0).is_some() {
                errors.push(
                    transition.message.span(),
                    format_args!("message `{}` appears twice in state `{}`", transition.message, state.name),
                );
                continue;
            }
            if let (Some(message), Some(next)) = (message, next) {
                let slot = match def.messages[message].dir {
                    Dir::In => 0,
                    Dir::Out => 1,
                };
                first_of[slot].get_or_insert(message);
                resolved.push(Edge { message, next });
            }
        }
        if let [Some(a), Some(b)] = first_of {
            errors.push(
                state.name.span(),
                format_args!(
                    "state `{}` lets both sides send (`{}` is `in`, `{}` is `out`): that is a race; \
                     in every state exactly one side sends",
                    state.name, def.messages[a].name, def.messages[b].name
                ),
            );
        }
        sender.push(match first_of {
            [Some(_), _] => Some(Dir::In),
            [None, Some(_)] => Some(Dir::Out),
            [None, None] => None,
        });
        match (state.terminal, state.transitions.is_empty()) {
            (Some(span), false) => {
                errors.push(span, format_args!("terminal state `{}` must not have transitions", state.name))
            }
            (None, true) => errors.push(
                state.name.span(),
                format_args!(
                    "state `{}` is not terminal but has no way out: give it a transition or mark it `terminal`",
                    state.name
                ),
            ),
            _ => {}
        }
        edges.push(resolved);
    }

    for (i, message) in def.messages.iter().enumerate() {
        if !used[i] {
            errors.push(message.name.span(), format_args!("message `{}` is not used by any state", message.name));
        }
    }

    let reachable = reachable_from(initial, &edges);
    for (i, state) in def.states.iter().enumerate() {
        if !reachable[i] {
            errors.push(
                state.name.span(),
                format_args!(
                    "state `{}` is unreachable from the initial state `{}`",
                    state.name, def.states[initial].name
                ),
            );
        }
    }

    let mut capacities = [0usize; 2];
    for (slot, dir) in [Dir::In, Dir::Out].into_iter().enumerate() {
        match longest_one_way_run(def, &edges, dir) {
            Ok(longest) => capacities[slot] = longest,
            Err(cycle) => {
                let names: Vec<String> = cycle.iter().map(|&(state, _)| def.states[state].name.to_string()).collect();
                let (state, message) = cycle[0];
                let span = def.states[state]
                    .transitions
                    .iter()
                    .find(|t| t.message == def.messages[message].name)
                    .map_or(def.states[state].name.span(), |t| t.message.span());
                errors.push(
                    span,
                    format_args!(
                        "the cycle {} -> {} sends only `{}` messages, so its queue would be unbounded; \
                         every cycle needs messages in both directions (Sing#'s bounded-queue rule)",
                        names.join(" -> "),
                        names[0],
                        dir.keyword()
                    ),
                );
            }
        }
    }

    errors.finish()?;
    Ok(Analysis { initial, edges, sender, in_capacity: capacities[0], out_capacity: capacities[1] })
}

/// The name of the field that holds the endpoint in a receive variant of a message with named parameters.
pub const ENDPOINT_FIELD: &str = "endpoint";

/// A message's parameters: all named or none, each name once and not [`ENDPOINT_FIELD`], and no type that
/// borrows or points.
fn check_parameters(message: &crate::parse::MessageDef, errors: &mut Errors) {
    let named = message.is_named();
    let mut seen = std::collections::HashSet::new();
    for field in &message.fields {
        match (&field.name, named) {
            (Some(name), true) => {
                if name == ENDPOINT_FIELD {
                    errors.push(
                        name.span(),
                        format_args!(
                            "a parameter may not be named `{ENDPOINT_FIELD}`: a received `{}` binds the endpoint \
                             in its next state under that name",
                            message.name
                        ),
                    );
                } else if !seen.insert(name.to_string()) {
                    errors.push(name.span(), format_args!("parameter `{name}` of `{}` is named twice", message.name));
                }
            }
            (None, false) => {}
            (_, _) => errors.push(
                field.ty.span(),
                format_args!(
                    "the parameters of `{}` are named or positional, not both: `{}(id: u64, text: ExString)` or \
                     `{}(u64, ExString)`",
                    message.name, message.name, message.name
                ),
            ),
        }
        if let Some((span, what)) = borrowed(&field.ty) {
            let ty = type_text(&field.ty);
            errors.push(
                span,
                format_args!(
                    "`{ty}` cannot travel in a message: {what}, and a message leaves its sender; send owned \
                     exchange-heap data (`ExVec<u8>`, `ExString`, `ExBox<T>`) or plain values"
                ),
            );
        }
    }
}

/// `ty` as a user writes it (`&'static u8`, `*const u8`, `[u8; 6]`), not as tokens print (`& 'static u8`).
pub fn type_text(ty: &syn::Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (spaced, tight) in
        [(" <", "<"), ("< ", "<"), (" >", ">"), (" ::", "::"), (":: ", "::"), (" ,", ","), (" ;", ";")]
    {
        text = text.replace(spaced, tight);
    }
    for (spaced, tight) in [("& ", "&"), ("* ", "*"), ("[ ", "["), (" ]", "]"), ("( ", "("), (" )", ")")] {
        text = text.replace(spaced, tight);
    }
    text
}

/// The first part of `ty` that borrows or points, and why that cannot travel.
fn borrowed(ty: &syn::Type) -> Option<(proc_macro2::Span, &'static str)> {
    use syn::visit::Visit;
    struct Finder(Option<(proc_macro2::Span, &'static str)>);
    impl<'a> Visit<'a> for Finder {
        fn visit_type(&mut self, ty: &'a syn::Type) {
            if self.0.is_some() {
                return;
            }
            let found = match ty {
                syn::Type::Reference(_) => Some("it is a reference (it borrows memory of the sender)"),
                syn::Type::Ptr(_) => Some("it is a raw pointer (an address in the sender's memory)"),
                syn::Type::BareFn(_) => Some("it is a function pointer (code of the sender)"),
                syn::Type::TraitObject(_) | syn::Type::ImplTrait(_) => {
                    Some("it is a trait object (its code and size are the sender's)")
                }
                _ => None,
            };
            match found {
                Some(what) => self.0 = Some((ty.span(), what)),
                None => syn::visit::visit_type(self, ty),
            }
        }
        fn visit_lifetime(&mut self, lifetime: &'a syn::Lifetime) {
            if self.0.is_none() {
                self.0 = Some((lifetime.span(), "it has a lifetime (it borrows memory of the sender)"));
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// Never used: `check` returns an error whenever it would be (kept total without `unwrap`).
fn unreachable_analysis() -> Analysis {
    Analysis { initial: 0, edges: Vec::new(), sender: Vec::new(), in_capacity: 0, out_capacity: 0 }
}

fn reachable_from(initial: usize, edges: &[Vec<Edge>]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![initial];
    while let Some(state) = stack.pop() {
        if std::mem::replace(&mut seen[state], true) {
            continue;
        }
        stack.extend(edges[state].iter().map(|e| e.next));
    }
    seen
}

/// The longest path using only `dir` messages, or a cycle of such messages as (state, message) steps.
fn longest_one_way_run(def: &ContractDef, edges: &[Vec<Edge>], dir: Dir) -> Result<usize, Vec<(usize, usize)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done(usize),
    }
    fn visit(
        state: usize,
        def: &ContractDef,
        edges: &[Vec<Edge>],
        dir: Dir,
        marks: &mut [Mark],
        path: &mut Vec<(usize, usize)>,
    ) -> Result<usize, Vec<(usize, usize)>> {
        if let Mark::Done(length) = marks[state] {
            return Ok(length);
        }
        marks[state] = Mark::OnPath;
        let mut longest = 0;
        for edge in edges[state].iter().filter(|e| def.messages[e.message].dir == dir) {
            path.push((state, edge.message));
            if marks[edge.next] == Mark::OnPath {
                let start = path.iter().position(|&(s, _)| s == edge.next).unwrap_or(0);
                return Err(path[start..].to_vec());
            }
            longest = longest.max(1 + visit(edge.next, def, edges, dir, marks, path)?);
            path.pop();
        }
        marks[state] = Mark::Done(longest);
        Ok(longest)
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut longest = 0;
    for state in 0..edges.len() {
        let mut path = Vec::new();
        longest = longest.max(visit(state, def, edges, dir, &mut marks, &mut path)?);
    }
    Ok(longest)
}
