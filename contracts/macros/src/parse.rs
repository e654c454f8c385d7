//! The syntax of a contract declaration, parsed into a small AST that keeps every name's span for errors.
//!
//! ```text
//! contract! {
//!     /// docs
//!     pub contract Echo {
//!         in message Ping(u64);          // client -> server (Sing#'s `in`, relative to the exporter)
//!         out message Pong(value: u64);  // server -> client (Sing#'s `out`); parameters may be named
//!         in message Bye;
//!         initial state Ready { Ping? -> Waiting, Bye -> Done }   // Sing#'s `?`/`!` marks are optional
//!         state Waiting { Pong! -> Ready }
//!         terminal state Done;
//!     }
//! }
//! ```
//!
//! Only syntax is checked here; meaning (names resolve, races, reachability, bounded queues, marks that agree
//! with the declarations) is `check`'s job. Sing# forms with no counterpart here (a sequence in one transition,
//! `state S: one { ... }`) are rejected with an error that shows the form to write instead, and every other
//! parse error says what was expected with an example of the accepted form.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Type, Visibility, braced, parenthesized};

mod kw {
    syn::custom_keyword!(contract);
    syn::custom_keyword!(message);
    syn::custom_keyword!(state);
    syn::custom_keyword!(initial);
    syn::custom_keyword!(terminal);
    syn::custom_keyword!(out);
}

/// Who sends a message, relative to the exporting (server) side, as in Sing#.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dir {
    /// `in`: the client sends, the server receives.
    In,
    /// `out`: the server sends, the client receives.
    Out,
}

impl Dir {
    pub fn keyword(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }
}

/// A whole `contract` declaration.
pub struct ContractDef {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub messages: Vec<MessageDef>,
    pub states: Vec<StateDef>,
}

/// `in message Name(T, U);` or `in message Name(a: T, b: U);`
pub struct MessageDef {
    pub attrs: Vec<Attribute>,
    pub dir: Dir,
    pub name: Ident,
    pub fields: Vec<FieldDef>,
}

/// One parameter of a message: its name if the contract gives one (all or none of a message's are named, which
/// `check` enforces), and its type.
pub struct FieldDef {
    pub name: Option<Ident>,
    pub ty: Type,
}

impl MessageDef {
    /// Whether the message's parameters are named (the first one decides; `check` rejects a mix).
    pub fn is_named(&self) -> bool {
        self.fields.first().is_some_and(|field| field.name.is_some())
    }
}

/// `[initial] [terminal] state Name { Msg -> Next, ... }` or `... state Name;`
pub struct StateDef {
    pub attrs: Vec<Attribute>,
    pub initial: Option<Span>,
    pub terminal: Option<Span>,
    pub name: Ident,
    pub transitions: Vec<TransitionDef>,
}

/// `Msg -> Next`, or with Sing#'s direction mark `Msg? -> Next` / `Msg! -> Next`.
pub struct TransitionDef {
    pub message: Ident,
    /// The mark, if written: `?` (the server receives: an `in` message) or `!` (the server sends: `out`).
    pub mark: Option<(Dir, Span)>,
    pub next: Ident,
}

impl Parse for ContractDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<kw::contract>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let mut messages = Vec::new();
        let mut states = Vec::new();
        while !body.is_empty() {
            let attrs = body.call(Attribute::parse_outer)?;
            if body.peek(Token![in]) || body.peek(kw::out) {
                messages.push(parse_message(&body, attrs)?);
            } else if body.peek(kw::initial) || body.peek(kw::terminal) || body.peek(kw::state) {
                states.push(parse_state(&body, attrs)?);
            } else {
                return Err(body.error(
                    "expected a message (`in message Ping(u64);`, `out message Pong(value: u64);`) or a state \
                     (`initial state Ready { Ping -> Waiting }`, `state Waiting { Pong -> Ready }`, \
                     `terminal state Done;`)",
                ));
            }
        }
        if !input.is_empty() {
            return Err(input.error("expected one contract per `contract!`"));
        }
        Ok(ContractDef { attrs, vis, name, messages, states })
    }
}

fn parse_message(input: ParseStream, attrs: Vec<Attribute>) -> syn::Result<MessageDef> {
    let dir = if input.peek(Token![in]) {
        input.parse::<Token![in]>()?;
        Dir::In
    } else {
        input.parse::<kw::out>()?;
        Dir::Out
    };
    input.parse::<kw::message>()?;
    let name: Ident = input.parse()?;
    let mut fields = Vec::new();
    if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        let parsed: Punctuated<FieldDef, Token![,]> = content.parse_terminated(FieldDef::parse, Token![,])?;
        fields.extend(parsed);
    }
    if !input.peek(Token![;]) {
        return Err(input.error(format_args!(
            "expected `;` after message `{name}`: a message is `{} message {name};` or `{} message {name}(u64, \
             ExString);` or, with named parameters, `{} message {name}(id: u64, text: ExString);`",
            dir.keyword(),
            dir.keyword(),
            dir.keyword()
        )));
    }
    input.parse::<Token![;]>()?;
    Ok(MessageDef { attrs, dir, name, fields })
}

impl Parse for FieldDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `name: Type` (a single colon: `a::B` is a path type).
        let fork = input.fork();
        let named = fork.parse::<Ident>().is_ok() && fork.peek(Token![:]) && !fork.peek(Token![::]);
        let name = if named {
            let name: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            Some(name)
        } else {
            None
        };
        let ty = input.parse::<Type>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected a payload type, e.g. `u64`, `ExVec<u8>`, or a named parameter `len: u64`",
            )
        })?;
        if !input.is_empty() && !input.peek(Token![,]) {
            return Err(input.error("expected `,` between parameters, e.g. `(id: u64, text: ExString)`"));
        }
        Ok(FieldDef { name, ty })
    }
}

fn parse_state(input: ParseStream, attrs: Vec<Attribute>) -> syn::Result<StateDef> {
    let mut initial = None;
    let mut terminal = None;
    loop {
        if input.peek(kw::initial) {
            let keyword = input.parse::<kw::initial>()?;
            initial = Some(keyword.span);
        } else if input.peek(kw::terminal) {
            let keyword = input.parse::<kw::terminal>()?;
            terminal = Some(keyword.span);
        } else {
            break;
        }
    }
    input.parse::<kw::state>()?;
    let name: Ident = input.parse()?;
    if input.peek(Token![:]) {
        return Err(input.error(format_args!(
            "Sing#'s `state {name}: one {{ ... }}` is written `state {name} {{ ... }}` here (every state is a \
             choice of one transition)"
        )));
    }
    let mut transitions = Vec::new();
    if input.peek(Token![;]) {
        input.parse::<Token![;]>()?;
    } else if input.peek(syn::token::Brace) {
        let content;
        braced!(content in input);
        // Separated by `,` or, as in Sing#, by `;`.
        while !content.is_empty() {
            transitions.push(content.parse::<TransitionDef>()?);
            if content.is_empty() {
                break;
            }
            if content.peek(Token![,]) {
                content.parse::<Token![,]>()?;
            } else if content.peek(Token![;]) {
                content.parse::<Token![;]>()?;
            } else {
                return Err(content.error("expected `,` between transitions, e.g. `{ Ping -> Waiting, Bye -> Done }`"));
            }
        }
    } else {
        return Err(input.error(format_args!(
            "expected the transitions of state `{name}` in braces, e.g. `state {name} {{ Ping -> Waiting }}`, or \
             `;` for a state with none (`terminal state {name};`)"
        )));
    }
    Ok(StateDef { attrs, initial, terminal, name, transitions })
}

impl Parse for TransitionDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let message: Ident = input
            .parse()
            .map_err(|error| syn::Error::new(error.span(), "expected a transition, e.g. `Ping -> Waiting`"))?;
        let mark = if input.peek(Token![?]) {
            Some((Dir::In, input.parse::<Token![?]>()?.span))
        } else if input.peek(Token![!]) {
            Some((Dir::Out, input.parse::<Token![!]>()?.span))
        } else {
            None
        };
        if !input.peek(Token![->]) {
            return Err(input.error(format_args!(
                "expected `->` and the next state after `{message}`, e.g. `{message} -> Waiting`"
            )));
        }
        input.parse::<Token![->]>()?;
        if input.peek(syn::token::Paren)
            || (input.peek(Ident) && (input.peek2(Token![->]) || input.peek2(Token![?]) || input.peek2(Token![!])))
        {
            return Err(input.error(format_args!(
                "a transition is one message and the state it leads to: Sing#'s sequence `{message}? -> Next! -> S` \
                 is written with a named state for each step, `{message} -> Between` here and \
                 `state Between {{ Next -> S }}`"
            )));
        }
        let next: Ident = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                format_args!("expected the state `{message}` leads to, e.g. `{message} -> Waiting`"),
            )
        })?;
        Ok(TransitionDef { message, mark, next })
    }
}
