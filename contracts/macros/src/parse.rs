//! The syntax of a contract declaration, parsed into a small AST that keeps every name's span for errors.
//!
//! ```text
//! contract! {
//!     /// docs
//!     pub contract Echo {
//!         in message Ping(u64);          // client -> server (Sing#'s `in`, relative to the exporter)
//!         out message Pong(u64);         // server -> client (Sing#'s `out`)
//!         in message Bye;
//!         initial state Ready { Ping -> Waiting, Bye -> Done }
//!         state Waiting { Pong -> Ready }
//!         terminal state Done;
//!     }
//! }
//! ```
//!
//! Only syntax is checked here; meaning (names resolve, races, reachability, bounded queues) is `check`'s job.

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

/// `in message Name(T, U);`
pub struct MessageDef {
    pub attrs: Vec<Attribute>,
    pub dir: Dir,
    pub name: Ident,
    pub fields: Vec<Type>,
}

/// `[initial] [terminal] state Name { Msg -> Next, ... }` or `... state Name;`
pub struct StateDef {
    pub attrs: Vec<Attribute>,
    pub initial: Option<Span>,
    pub terminal: Option<Span>,
    pub name: Ident,
    pub transitions: Vec<TransitionDef>,
}

/// `Msg -> Next`
pub struct TransitionDef {
    pub message: Ident,
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
            let lookahead = body.lookahead1();
            if lookahead.peek(Token![in]) || lookahead.peek(kw::out) {
                messages.push(parse_message(&body, attrs)?);
            } else if lookahead.peek(kw::initial) || lookahead.peek(kw::terminal) || lookahead.peek(kw::state) {
                states.push(parse_state(&body, attrs)?);
            } else {
                return Err(lookahead.error());
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
        let types: Punctuated<Type, Token![,]> = content.parse_terminated(Type::parse, Token![,])?;
        fields.extend(types);
    }
    input.parse::<Token![;]>()?;
    Ok(MessageDef { attrs, dir, name, fields })
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
    let mut transitions = Vec::new();
    if input.peek(Token![;]) {
        input.parse::<Token![;]>()?;
    } else {
        let content;
        braced!(content in input);
        let parsed: Punctuated<TransitionDef, Token![,]> = content.parse_terminated(TransitionDef::parse, Token![,])?;
        transitions.extend(parsed);
    }
    Ok(StateDef { attrs, initial, terminal, name, transitions })
}

impl Parse for TransitionDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let message: Ident = input.parse()?;
        input.parse::<Token![->]>()?;
        let next: Ident = input.parse()?;
        Ok(TransitionDef { message, next })
    }
}
