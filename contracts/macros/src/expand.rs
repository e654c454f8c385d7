//! Code generation for a checked contract: one module per contract with the marker type, message structs, the
//! two wire enums, zero-sized states, typestate `Client<S>`/`Server<S>` endpoints with one method per allowed
//! action, per-state receive enums, `channel()` and the static `INFO` description.
//!
//! Every generated item names the runtime through `::channels`, so a crate using `contract!` depends on
//! `channels`. Payload types are checked for `Exchangeable` with their own spans, so a bad payload's error
//! points at the type in the contract.

use crate::check::Analysis;
use crate::derive::drop_guard;
use crate::names::snake_case;
use crate::parse::{ContractDef, Dir};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

/// Doc attributes of `attrs`, or a generated doc line if there are none (the crate warns on missing docs).
fn docs_or(attrs: &[syn::Attribute], fallback: String) -> TokenStream {
    let docs: Vec<&syn::Attribute> = attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    if docs.is_empty() { quote!(#[doc = #fallback]) } else { quote!(#(#docs)*) }
}

pub fn expand(def: &ContractDef, analysis: &Analysis) -> TokenStream {
    let name = &def.name;
    let name_str = name.to_string();
    let module = Ident::new(&snake_case(&name_str), name.span());
    let vis = &def.vis;
    let other_attrs: Vec<&syn::Attribute> = def.attrs.iter().filter(|a| !a.path().is_ident("doc")).collect();
    let module_docs = docs_or(&def.attrs, format!("The `{name_str}` channel contract."));

    let endpoint_types: Vec<TokenStream> = def
        .states
        .iter()
        .flat_map(|st| {
            let st = &st.name;
            [quote!(Client<state::#st>), quote!(Server<state::#st>)]
        })
        .collect();

    // --- messages --------------------------------------------------------------------------------------------
    let mut message_structs = Vec::new();
    let mut in_variants = Vec::new();
    let mut out_variants = Vec::new();
    let mut in_transfer_arms = Vec::new();
    let mut out_transfer_arms = Vec::new();
    let mut in_tracked = Vec::new();
    let mut out_tracked = Vec::new();
    let mut in_any_tracked = Vec::new();
    let mut out_any_tracked = Vec::new();
    let (mut in_encode_arms, mut out_encode_arms) = (Vec::new(), Vec::new());
    let (mut in_decode_arms, mut out_decode_arms) = (Vec::new(), Vec::new());
    // Each message's variant index in its wire enum: its tag in the byte form, and what a ring-3 send names.
    let mut tags = std::collections::HashMap::new();
    for message in &def.messages {
        let msg = &message.name;
        let docs = docs_or(&message.attrs, format!("Message `{msg}` (`{}`).", message.dir.keyword()));
        let types = &message.fields;
        let fields: Vec<TokenStream> = types.iter().map(|ty| quote!(pub #ty)).collect();
        let indices = (0..types.len()).map(syn::Index::from);
        // Spanned at each payload type, so "not Exchangeable" points at the type in the contract.
        let transfers: Vec<TokenStream> = types
            .iter()
            .zip(indices)
            .map(|(ty, index)| {
                quote_spanned! {ty.span()=>
                    <#ty as ::channels::Exchangeable>::__visit(&self.#index, walk);
                }
            })
            .collect();
        let body = if types.is_empty() { quote!(;) } else { quote!((#(#fields),*);) };
        let encodes: Vec<TokenStream> = (0..types.len())
            .map(syn::Index::from)
            .zip(types)
            .map(|(index, ty)| quote!(<#ty as ::channels::Exchangeable>::__encode(self.#index, out)?;))
            .collect();
        let decodes = types.iter().map(|ty| quote!(<#ty as ::channels::Exchangeable>::__decode(input)?));
        let decode_value = if types.is_empty() { quote!(Self) } else { quote!(Self(#(#decodes),*)) };
        let guard = drop_guard(msg, &syn::Generics::default());
        message_structs.push(quote! {
            #docs
            pub struct #msg #body
            // SAFETY: generated: every field is `Exchangeable` and visited once; no `Drop` (the guard below).
            unsafe impl ::channels::Exchangeable for #msg {
                const __TRACKED: bool = false #(|| <#types as ::channels::Exchangeable>::__TRACKED)*;
                #[allow(unused_variables)]
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    #(#transfers)*
                }
                #[allow(unused_variables)]
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    #(#encodes)*
                    ::core::result::Result::Ok(())
                }
                #[allow(unused_variables)]
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    ::core::result::Result::Ok(#decode_value)
                }
            }
            #guard
        });
        let variant_doc = format!("`{msg}`");
        let variant = quote!(#[doc = #variant_doc] #msg(msg::#msg));
        let tag = match message.dir {
            Dir::In => in_variants.len(),
            Dir::Out => out_variants.len(),
        } as u32;
        let encode_arm = quote! {
            Self::#msg(m) => {
                out.put_tag(#tag)?;
                ::channels::Exchangeable::__encode(m, out)
            }
        };
        let decode_arm = quote! {
            #tag => ::core::result::Result::Ok(Self::#msg(<msg::#msg as ::channels::Exchangeable>::__decode(input)?)),
        };
        tags.insert(msg.to_string(), tag);
        let arm = quote!(Self::#msg(m) => ::channels::Exchangeable::__visit(m, walk),);
        let tracked = quote!(Self::#msg(_) => <msg::#msg as ::channels::Exchangeable>::__TRACKED,);
        let any_tracked = quote!(|| <msg::#msg as ::channels::Exchangeable>::__TRACKED);
        match message.dir {
            Dir::In => {
                in_encode_arms.push(encode_arm);
                in_decode_arms.push(decode_arm);
                in_variants.push(variant);
                in_transfer_arms.push(arm);
                in_tracked.push(tracked);
                in_any_tracked.push(any_tracked);
            }
            Dir::Out => {
                out_encode_arms.push(encode_arm);
                out_decode_arms.push(decode_arm);
                out_variants.push(variant);
                out_transfer_arms.push(arm);
                out_tracked.push(tracked);
                out_any_tracked.push(any_tracked);
            }
        }
    }

    // A wire enum of one direction may have no message at all: matching it then needs `*self` (an uninhabited
    // place), since a reference to an empty enum is still considered inhabited.
    let match_on = |arms: &[TokenStream]| {
        if arms.is_empty() { quote!(match *self {}) } else { quote!(match self { #(#arms)* }) }
    };
    let (in_tracked_match, in_transfer_arms_match) = (match_on(&in_tracked), match_on(&in_transfer_arms));
    let (out_tracked_match, out_transfer_arms_match) = (match_on(&out_tracked), match_on(&out_transfer_arms));

    // --- states ----------------------------------------------------------------------------------------------
    let state_items = def.states.iter().map(|state| {
        let ident = &state.name;
        let docs = docs_or(&state.attrs, format!("State `{ident}`."));
        quote! {
            #docs
            #[derive(Debug)]
            pub enum #ident {}
        }
    });

    // --- per-state endpoint methods --------------------------------------------------------------------------
    let mut impls = Vec::new();
    let mut client_enums = Vec::new();
    let mut server_enums = Vec::new();
    for (index, state) in def.states.iter().enumerate() {
        let st = &state.name;
        if state.terminal.is_some() {
            for side in [quote!(Client), quote!(Server)] {
                impls.push(quote! {
                    impl #side<state::#st> {
                        /// Ends the conversation: the protocol is complete. (Dropping the endpoint does the same.)
                        pub fn close(self) {}
                    }
                });
            }
            continue;
        }
        let Some(sender) = analysis.sender[index] else { continue };
        let (send_side, send_wire, recv_side, recv_module, recv_wire, tx, rx) = match sender {
            Dir::In => (
                quote!(Client),
                quote!(ToServer),
                quote!(Server),
                quote!(server),
                quote!(ToServer),
                quote!(ToClient),
                quote!(ToServer),
            ),
            Dir::Out => (
                quote!(Server),
                quote!(ToClient),
                quote!(Client),
                quote!(client),
                quote!(ToClient),
                quote!(ToServer),
                quote!(ToClient),
            ),
        };
        let mut send_methods = Vec::new();
        let mut variants = Vec::new();
        // Each allowed message's wire pattern, and the typed value it becomes (moving `raw`, the endpoint's
        // transport, into the next state).
        let mut decode_patterns = Vec::new();
        let mut decode_values = Vec::new();
        for edge in &analysis.edges[index] {
            let message = &def.messages[edge.message];
            let msg = &message.name;
            let next = &def.states[edge.next].name;
            let method = format_ident!("send_{}", snake_case(&msg.to_string()), span = msg.span());
            let args: Vec<Ident> = (0..message.fields.len()).map(|i| format_ident!("arg{i}")).collect();
            let types = &message.fields;
            let tag = tags[&msg.to_string()];
            let construct = if args.is_empty() { quote!(msg::#msg) } else { quote!(msg::#msg(#(#args),*)) };
            let docs = docs_or(&message.attrs, format!("Sends `{msg}`."));
            let transition_doc =
                format!("In `{st}`: `{msg}` moves to `{next}`; if the peer is gone the message comes back.");
            send_methods.push(quote! {
                #docs
                #[doc = ""]
                #[doc = #transition_doc]
                // Inline across crates: the typestate layer must cost nothing over the raw ring
                // (docs/benchmarks.md measures it in instructions).
                #[inline]
                pub fn #method(self, #(#args: #types),*)
                    -> ::core::result::Result<#send_side<state::#next>, ::channels::PeerClosed<msg::#msg>>
                {
                    let mut raw = self.raw;
                    match raw.send_mapped(#construct, #tag, #send_wire::#msg) {
                        ::core::result::Result::Ok(()) => {
                            ::core::result::Result::Ok(#send_side { raw, state: ::core::marker::PhantomData })
                        }
                        ::core::result::Result::Err(message) => {
                            ::core::result::Result::Err(::channels::PeerClosed(message))
                        }
                    }
                }
            });
            let variant_doc = format!("`{msg}` arrived; the endpoint is now in `{next}`.");
            variants.push(quote! {
                #[doc = #variant_doc]
                #msg(#(#types,)* super::#recv_side<super::state::#next>)
            });
            decode_patterns.push(quote!(#recv_wire::#msg(#construct)));
            decode_values.push(quote! {
                #recv_module::#st::#msg(#(#args,)* #recv_side { raw, state: ::core::marker::PhantomData })
            });
        }
        impls.push(quote! {
            impl #send_side<state::#st> {
                #(#send_methods)*
            }
        });
        let enum_doc =
            format!("What the {} may receive in state `{st}`.", if sender == Dir::In { "server" } else { "client" });
        let recv_enum = quote! {
            #[doc = #enum_doc]
            pub enum #st { #(#variants),* }
        };
        match sender {
            Dir::In => server_enums.push(recv_enum),
            Dir::Out => client_enums.push(recv_enum),
        }
        let recv_doc = format!("Waits for the next message in `{st}`, or `Closed` if the peer is gone.");
        impls.push(quote! {
            // SAFETY: generated: the endpoint's own transport, and a decode that accepts exactly this state's
            // messages.
            unsafe impl ::channels::Receive for #recv_side<state::#st> {
                type Tx = #tx;
                type Rx = #rx;
                type Message = #recv_module::#st;

                #[inline]
                fn __raw(&mut self, _: ::channels::Internal) -> &mut ::channels::raw::RawEndpoint<#tx, #rx> {
                    &mut self.raw
                }

                #[inline]
                fn __raw_ref(&self, _: ::channels::Internal) -> &::channels::raw::RawEndpoint<#tx, #rx> {
                    &self.raw
                }

                #[inline]
                fn __decode(
                    self,
                    message: #rx,
                    _: ::channels::Internal,
                ) -> ::core::result::Result<#recv_module::#st, ::channels::Closed> {
                    let raw = self.raw;
                    #[allow(unreachable_patterns)]
                    match message {
                        #(#decode_patterns => ::core::result::Result::Ok(#decode_values),)*
                        // A message this state does not allow cannot come from a typed peer; treat the channel as
                        // broken rather than trust it.
                        _ => ::core::result::Result::Err(::channels::Closed),
                    }
                }
            }

            impl #recv_side<state::#st> {
                #[doc = #recv_doc]
                #[inline]
                pub fn recv(self) -> ::core::result::Result<#recv_module::#st, ::channels::Closed> {
                    ::channels::recv(self)
                }

                /// Takes the next message if one is there; otherwise gives the endpoint back.
                // Not `::channels::try_recv` (decode, then re-wrap): each message becomes its `TryRecv` directly,
                // so the typed receive is one `match` on the wire enum, as a raw receive is, with no intermediate
                // `Result` for the optimiser to copy from.
                #[inline]
                pub fn try_recv(self) -> ::channels::TryRecv<#recv_module::#st, Self> {
                    let mut raw = self.raw;
                    #[allow(unreachable_patterns)]
                    match raw.try_recv() {
                        #(::core::result::Result::Ok(#decode_patterns) => ::channels::TryRecv::Message(#decode_values),)*
                        // As in `__decode`.
                        ::core::result::Result::Ok(_) => ::channels::TryRecv::Closed,
                        ::core::result::Result::Err(::channels::raw::TryRecvError::Empty) => {
                            ::channels::TryRecv::Empty(Self { raw, state: ::core::marker::PhantomData })
                        }
                        ::core::result::Result::Err(::channels::raw::TryRecvError::Closed) => ::channels::TryRecv::Closed,
                    }
                }
            }
        });
    }

    // --- description -----------------------------------------------------------------------------------------
    let message_infos = def.messages.iter().map(|message| {
        let msg = message.name.to_string();
        let direction = match message.dir {
            Dir::In => quote!(::channels::Direction::ToServer),
            Dir::Out => quote!(::channels::Direction::ToClient),
        };
        let payload = message.fields.iter().map(|ty| quote!(#ty).to_string().replace(' ', ""));
        quote!(::channels::MessageInfo { name: #msg, direction: #direction, payload: &[#(#payload),*] })
    });
    let state_infos = def.states.iter().enumerate().map(|(index, state)| {
        let st = state.name.to_string();
        let terminal = state.terminal.is_some();
        let transitions = analysis.edges[index].iter().map(|edge| {
            let (message, next) = (edge.message, edge.next);
            quote!(::channels::TransitionInfo { message: #message, next: #next })
        });
        quote!(::channels::StateInfo { name: #st, terminal: #terminal, transitions: &[#(#transitions),*] })
    });
    let initial = &def.states[analysis.initial].name;
    let initial_index = analysis.initial;
    let in_capacity = analysis.in_capacity;
    let out_capacity = analysis.out_capacity;
    let marker_doc = format!(
        "The `{name_str}` contract: at most {in_capacity} message(s) in flight to the server, {out_capacity} to the client."
    );
    let client_doc = format!("The client (importer) end of a `{name_str}` channel, in state `S`.");
    let server_doc = format!("The server (exporter) end of a `{name_str}` channel, in state `S`.");
    let client_name = format!("{module}::Client");
    // No `Drop` of the crate's own on the endpoints and wire enums either (the derive's guard, module docs).
    let endpoint_guards = [
        drop_guard(&format_ident!("Client"), &syn::parse_quote!(<S>)),
        drop_guard(&format_ident!("Server"), &syn::parse_quote!(<S>)),
    ];
    let wire_guards = [
        drop_guard(&format_ident!("ToServer"), &syn::Generics::default()),
        drop_guard(&format_ident!("ToClient"), &syn::Generics::default()),
    ];
    let endpoint_guards = quote!(#(#endpoint_guards)*);
    let wire_guards = quote!(#(#wire_guards)*);
    let server_name = format!("{module}::Server");

    quote! {
        #module_docs
        #(#other_attrs)*
        #vis mod #module {
            #![allow(unused_imports, clippy::enum_variant_names, clippy::large_enum_variant)]
            use super::*;

            #[doc = #marker_doc]
            #[derive(Clone, Copy, Debug)]
            pub struct #name;

            /// Message payloads.
            pub mod msg {
                use super::*;
                #(#message_structs)*
            }

            /// Every message the client sends (one ring carries these).
            pub enum ToServer { #(#in_variants),* }
            // SAFETY: generated: each variant's message is `Exchangeable` and visited.
            unsafe impl ::channels::Exchangeable for ToServer {
                const __TRACKED: bool = false #(#in_any_tracked)*;
                // By variant: a plain message of a contract that also has tracked ones skips the owner walk.
                #[inline]
                fn __is_tracked(&self) -> bool {
                    #in_tracked_match
                }
                #[allow(unused_variables)]
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    #in_transfer_arms_match
                }
                #[allow(unused_variables, unreachable_code)]
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    match self { #(#in_encode_arms)* }
                }
                #[allow(unused_variables)]
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    match input.take_tag()? {
                        #(#in_decode_arms)*
                        _ => ::core::result::Result::Err(::channels::wire::WireError::BadValue),
                    }
                }
            }

            /// Every message the server sends (the other ring carries these).
            pub enum ToClient { #(#out_variants),* }
            // SAFETY: generated: each variant's message is `Exchangeable` and visited.
            unsafe impl ::channels::Exchangeable for ToClient {
                const __TRACKED: bool = false #(#out_any_tracked)*;
                // By variant: a plain message of a contract that also has tracked ones skips the owner walk.
                #[inline]
                fn __is_tracked(&self) -> bool {
                    #out_tracked_match
                }
                #[allow(unused_variables)]
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    #out_transfer_arms_match
                }
                #[allow(unused_variables, unreachable_code)]
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    match self { #(#out_encode_arms)* }
                }
                #[allow(unused_variables)]
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    match input.take_tag()? {
                        #(#out_decode_arms)*
                        _ => ::core::result::Result::Err(::channels::wire::WireError::BadValue),
                    }
                }
            }

            /// The contract's states (uninhabited: they exist only as types).
            pub mod state {
                #(#state_items)*
            }

            /// What the client receives, per state.
            pub mod client {
                use super::*;
                #(#client_enums)*
            }

            /// What the server receives, per state.
            pub mod server {
                use super::*;
                #(#server_enums)*
            }

            /// The contract's state machine.
            pub const INFO: ::channels::ContractInfo = ::channels::ContractInfo {
                name: #name_str,
                initial: #initial_index,
                states: &[#(#state_infos),*],
                messages: &[#(#message_infos),*],
                to_server_capacity: #in_capacity,
                to_client_capacity: #out_capacity,
            };

            impl ::channels::Contract for #name {
                type ToServer = ToServer;
                type ToClient = ToClient;
                const TO_SERVER_CAPACITY: usize = #in_capacity;
                const TO_CLIENT_CAPACITY: usize = #out_capacity;
                const INFO: &'static ::channels::ContractInfo = &INFO;
            }

            #[doc = #client_doc]
            pub struct Client<S> {
                raw: ::channels::raw::RawEndpoint<ToServer, ToClient>,
                state: ::core::marker::PhantomData<fn() -> S>,
            }

            #[doc = #server_doc]
            pub struct Server<S> {
                raw: ::channels::raw::RawEndpoint<ToClient, ToServer>,
                state: ::core::marker::PhantomData<fn() -> S>,
            }

            /// Creates a channel: the client end and the server end, both in the initial state.
            pub fn channel() -> (Client<state::#initial>, Server<state::#initial>) {
                let (client, server) = ::channels::contract_pair::<#name>();
                (
                    Client { raw: client, state: ::core::marker::PhantomData },
                    Server { raw: server, state: ::core::marker::PhantomData },
                )
            }

            /// Creates a channel, or reports that the exchange heap (or the caller's quota) cannot hold it.
            pub fn try_channel()
                -> ::core::result::Result<(Client<state::#initial>, Server<state::#initial>), ::channels::AllocError>
            {
                let (client, server) = ::channels::try_contract_pair::<#name>()?;
                ::core::result::Result::Ok((
                    Client { raw: client, state: ::core::marker::PhantomData },
                    Server { raw: server, state: ::core::marker::PhantomData },
                ))
            }

            impl<S> Client<S> {
                /// Whether the server end is gone (a send would give its message back).
                pub fn is_peer_closed(&self) -> bool {
                    self.raw.is_peer_closed()
                }

                /// Messages from the server waiting to be received (diagnostics).
                pub fn queued(&self) -> usize {
                    self.raw.queued()
                }

                /// Messages sent to the server and not yet received (diagnostics; never above
                /// the contract's `TO_SERVER_CAPACITY`).
                pub fn in_flight(&self) -> usize {
                    self.raw.in_flight()
                }

                /// Whether `server` is this endpoint's peer.
                pub fn is_peer_of<T>(&self, server: &Server<T>) -> bool {
                    self.raw.is_peer_of(&server.raw)
                }
            }

            impl<S> Server<S> {
                /// Whether the client end is gone (a send would give its message back).
                pub fn is_peer_closed(&self) -> bool {
                    self.raw.is_peer_closed()
                }

                /// Messages from the client waiting to be received (diagnostics).
                pub fn queued(&self) -> usize {
                    self.raw.queued()
                }

                /// Messages sent to the client and not yet received (diagnostics; never above
                /// the contract's `TO_CLIENT_CAPACITY`).
                pub fn in_flight(&self) -> usize {
                    self.raw.in_flight()
                }
            }

            impl<S> ::core::fmt::Debug for Client<S> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#client_name)
                        .field("state", &::core::any::type_name::<S>())
                        .field("raw", &self.raw)
                        .finish()
                }
            }

            impl<S> ::core::fmt::Debug for Server<S> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#server_name)
                        .field("state", &::core::any::type_name::<S>())
                        .field("raw", &self.raw)
                        .finish()
                }
            }

            // SAFETY: generated: an endpoint holds its transport's side, visited; no `Drop` (the guards below).
            unsafe impl<S: 'static> ::channels::Exchangeable for Client<S> {
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    ::channels::Exchangeable::__visit(&self.raw, walk);
                }
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    ::channels::Exchangeable::__encode(self.raw, out)
                }
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    let raw = ::channels::Exchangeable::__decode(input)?;
                    ::core::result::Result::Ok(Self { raw, state: ::core::marker::PhantomData })
                }
            }
            // SAFETY: as for `Client`.
            unsafe impl<S: 'static> ::channels::Exchangeable for Server<S> {
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    ::channels::Exchangeable::__visit(&self.raw, walk);
                }
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    ::channels::Exchangeable::__encode(self.raw, out)
                }
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    let raw = ::channels::Exchangeable::__decode(input)?;
                    ::core::result::Result::Ok(Self { raw, state: ::core::marker::PhantomData })
                }
            }
            #endpoint_guards
            #wire_guards

            // What may cross between ring 0 and ring 3 (`channels::wire`): this contract's channels, and its
            // endpoints inside an `ExAny` (how a name service or a parent hands one over).
            ::channels::__register_crossings!(#name; #(#endpoint_types),*);

            #(#impls)*
        }
    }
}
