//! Code generation for a checked contract: one module per contract with the marker type, message structs, the
//! two wire enums, zero-sized states (each a `channels::State`), the typestate endpoints (`NameClient<S>` and
//! `NameServer<S>`, named `Client<S>`/`Server<S>` by aliases) over a `channels::tracked::Tracked` transport, one
//! generic send method per message and side (and its `_and_recv` form) bounded by the `rules` traits whose
//! `on_unimplemented` texts name the broken rule, `close` bounded by `rules::Terminal`, per-state receive enums,
//! `channel()` and the static `INFO` description.
//!
//! Every generated item names the runtime through `::channels`, so a crate using `contract!` depends on
//! `channels`. Payload types, and the bindings and bounds that mention them, are spanned at the type in the
//! contract, so a bad payload's error points there; the rules' bounds are spanned at the message or state they
//! are about.

use crate::check::Analysis;
use crate::derive::drop_guard;
use crate::names::snake_case;
use crate::parse::{ContractDef, Dir};
use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
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
        let types: Vec<&syn::Type> = message.fields.iter().map(|field| &field.ty).collect();
        // How the generated code reaches each field: by name (`self.len`) or by position (`self.0`).
        let members: Vec<syn::Member> = message
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| match &field.name {
                Some(name) => syn::Member::Named(name.clone()),
                None => syn::Member::Unnamed(syn::Index::from(index)),
            })
            .collect();
        // Spanned at each payload type, so "not Exchangeable" points at the type in the contract. (Spanning the
        // encode and decode calls too would add a copy of the error there: the compiler reports an unsatisfied
        // bound once per span, and these unspanned ones merge with it.)
        let transfers: Vec<TokenStream> = types
            .iter()
            .zip(&members)
            .map(|(ty, member)| {
                quote_spanned! {ty.span()=>
                    <#ty as ::channels::Exchangeable>::__visit(&self.#member, walk);
                }
            })
            .collect();
        let body = if types.is_empty() {
            quote!(;)
        } else if message.is_named() {
            let fields = message.fields.iter().map(|field| {
                let (name, ty) = (&field.name, &field.ty);
                let doc =
                    format!("Parameter `{}` of `{msg}`.", name.as_ref().map(ToString::to_string).unwrap_or_default());
                quote!(#[doc = #doc] pub #name: #ty)
            });
            quote!({ #(#fields),* })
        } else {
            quote!((#(pub #types),*);)
        };
        let encodes: Vec<TokenStream> = members
            .iter()
            .zip(&types)
            .map(|(member, ty)| quote!(<#ty as ::channels::Exchangeable>::__encode(self.#member, out)?;))
            .collect();
        let decodes: Vec<TokenStream> = members
            .iter()
            .zip(&types)
            .map(
                |(member, ty)| quote_spanned!(ty.span()=> #member: <#ty as ::channels::Exchangeable>::__decode(input)?),
            )
            .collect();
        let decode_value = if types.is_empty() { quote!(Self) } else { quote!(Self { #(#decodes),* }) };
        let tracked_of =
            types.iter().map(|ty| quote_spanned!(ty.span()=> || <#ty as ::channels::Exchangeable>::__TRACKED));
        let guard = drop_guard(msg, &syn::Generics::default());
        message_structs.push(quote! {
            #docs
            pub struct #msg #body
            // SAFETY: generated: every field is `Exchangeable` and visited once; no `Drop` (the guard below).
            unsafe impl ::channels::Exchangeable for #msg {
                const __TRACKED: bool = false #(#tracked_of)*;
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
        let (state_name, terminal) = (ident.to_string(), state.terminal.is_some());
        quote! {
            #docs
            #[derive(Debug)]
            pub enum #ident {}
            impl ::channels::State for #ident {
                const CONTRACT: &'static str = #name_str;
                const NAME: &'static str = #state_name;
                const TERMINAL: bool = #terminal;
            }
        }
    });

    // --- the endpoint types ----------------------------------------------------------------------------------
    // Named after the contract (`EchoClient`), so that a compiler error about an endpoint of the wrong contract
    // names both contracts; `Client<S>` and `Server<S>` are the names code uses (type aliases).
    let client = format_ident!("{}Client", name);
    let server = format_ident!("{}Server", name);
    let side_struct = |dir: Dir| if dir == Dir::In { &client } else { &server };
    let side_word = |dir: Dir| if dir == Dir::In { "client" } else { "server" };

    // --- sends: one method per message and side, allowed by a trait its states implement ----------------------
    // A send is allowed where the state implements the message's trait (`rules::ClientSendsPing`), whose
    // associated type is the next state. Sending in the wrong state, or from the wrong side (the other side's
    // trait has no implementation), is then a trait error, and the trait's `on_unimplemented` text names the
    // contract, the side, the message and the states where it is allowed.
    let mut rules = Vec::new();
    let mut impls = Vec::new();
    for (index, message) in def.messages.iter().enumerate() {
        let msg = &message.name;
        let tag = tags[&msg.to_string()];
        let method = format_ident!("send_{}", snake_case(&msg.to_string()), span = msg.span());
        let types: Vec<&syn::Type> = message.fields.iter().map(|field| &field.ty).collect();
        let args: Vec<Ident> = message.fields.iter().enumerate().map(|(i, field)| binding(i, field)).collect();
        let construct = construct_of(message, &args);
        let allowed: Vec<(usize, usize)> = analysis
            .edges
            .iter()
            .enumerate()
            .flat_map(|(state, edges)| edges.iter().filter(|e| e.message == index).map(move |e| (state, e.next)))
            .collect();
        let listed = allowed
            .iter()
            .map(|&(state, next)| format!("`{}` (then `{}`)", def.states[state].name, def.states[next].name))
            .collect::<Vec<_>>()
            .join(", ");
        let (sender, receiver) = (message.dir, if message.dir == Dir::In { Dir::Out } else { Dir::In });
        for side in [sender, receiver] {
            let trait_name = format_ident!("{}Sends{}", if side == Dir::In { "Client" } else { "Server" }, msg);
            let endpoint = side_struct(side);
            // The bound is spanned at the message's declaration: "required by a bound" then points there, not
            // at the whole contract.
            let bound_at = quote_spanned!(msg.span()=> S: rules::#trait_name);
            let (side_name, sender_name) = (side_word(side), side_word(sender));
            if side == sender {
                let text = format!("in `{name_str}`, the {side_name} cannot send `{msg}` in state `{{Self}}`");
                let note = format!("the {side_name} sends `{msg}` in {listed}");
                let state_impls = allowed.iter().map(|&(state, next)| {
                    let (st, next) = (&def.states[state].name, &def.states[next].name);
                    // Spanned at the transition, so "the trait is implemented for ..." points at it.
                    let at = def.states[state]
                        .transitions
                        .iter()
                        .find(|t| t.message == *msg)
                        .map_or(def.states[state].name.span(), |t| t.message.span());
                    quote_spanned!(at=> impl #trait_name<super::state::#next> for super::state::#st {})
                });
                let trait_doc = format!("The states in which the {side_name} may send `{msg}`.");
                rules.push(quote! {
                    #[doc = #trait_doc]
                    #[diagnostic::on_unimplemented(message = #text, label = "not allowed in this state", note = #note)]
                    // The next state is a parameter, not an associated type: a projection in the method's return
                    // type would make a wrong-state send "method exists but its trait bounds were not
                    // satisfied", without this trait's text.
                    pub trait #trait_name<Next> {}
                    #(#state_impls)*
                });
                let wire = if sender == Dir::In { quote!(ToServer) } else { quote!(ToClient) };
                let docs = docs_or(&message.attrs, format!("Sends `{msg}`."));
                let transition_doc = format!("Allowed in {listed}; if the peer is gone the message comes back.");
                impls.push(quote! {
                    impl<S: ::channels::State> #endpoint<S> {
                        #docs
                        #[doc = ""]
                        #[doc = #transition_doc]
                        // Inline across crates: the typestate layer must cost nothing over the raw ring
                        // (docs/benchmarks.md measures it in instructions).
                        #[inline]
                        pub fn #method<Next>(self, #(#args: #types),*)
                            -> ::core::result::Result<#endpoint<Next>, ::channels::PeerClosed<msg::#msg>>
                        where
                            #bound_at<Next>,
                            Next: ::channels::State,
                        {
                            let mut raw = self.raw.into_raw();
                            match raw.send_mapped(#construct, #tag, #wire::#msg) {
                                ::core::result::Result::Ok(()) => {
                                    ::core::result::Result::Ok(#endpoint { raw: ::channels::tracked::Tracked::new(raw) })
                                }
                                ::core::result::Result::Err(message) => {
                                    ::core::result::Result::Err(::channels::PeerClosed(message))
                                }
                            }
                        }
                    }
                });
                // Where the send leads to a state in which this side receives (a request and its answer, an
                // answer and the next request): the two as one operation, which a ring-3 endpoint makes one call
                // to the kernel (L4's call and reply-and-wait).
                let receives_next = allowed.iter().any(|&(_, next)| analysis.sender[next] == Some(receiver));
                if receives_next {
                    let call = format_ident!("send_{}_and_recv", snake_case(&msg.to_string()), span = msg.span());
                    let (tx, rx) = if sender == Dir::In {
                        (quote!(ToServer), quote!(ToClient))
                    } else {
                        (quote!(ToClient), quote!(ToServer))
                    };
                    let call_doc = format!(
                        "Sends `{msg}` and waits for what comes next: `{method}` then `recv`, as one operation (in \
                         ring 3, one call to the kernel). Allowed where `{method}` is and leads to a state in which \
                         the {side_name} receives."
                    );
                    impls.push(quote! {
                        impl<S: ::channels::State> #endpoint<S> {
                            #[doc = #call_doc]
                            #[inline]
                            pub fn #call<Next>(self, #(#args: #types),*)
                                -> ::core::result::Result<
                                    <#endpoint<Next> as ::channels::Receive>::Message,
                                    ::channels::CallFailed<msg::#msg>,
                                >
                            where
                                #bound_at<Next>,
                                Next: ::channels::State,
                                #endpoint<Next>: ::channels::Receive<Tx = #tx, Rx = #rx>,
                            {
                                ::channels::send_then_recv(
                                    self.raw.into_raw(),
                                    #construct,
                                    #tag,
                                    #wire::#msg,
                                    |raw| #endpoint { raw: ::channels::tracked::Tracked::new(raw) },
                                )
                            }
                        }
                    });
                }
            } else {
                // The side that never sends this message: a trait with no implementation, whose error says who
                // sends it, behind a method that can never be called.
                let text = format!(
                    "`{msg}` is sent by the {sender_name} of `{name_str}` (`{} message {msg}`), never by the {side_name}",
                    message.dir.keyword()
                );
                let note = format!("the {side_name} receives `{msg}`: the {sender_name} sends it in {listed}");
                let trait_doc = format!("None: the {side_name} never sends `{msg}`.");
                rules.push(quote! {
                    #[doc = #trait_doc]
                    #[diagnostic::on_unimplemented(message = #text, label = "the wrong side for this message", note = #note)]
                    pub trait #trait_name {
                        #[doc(hidden)]
                        fn __never() -> ::core::convert::Infallible;
                    }
                });
                impls.push(quote! {
                    impl<S: ::channels::State> #endpoint<S> {
                        #[doc(hidden)]
                        #[allow(unused_variables)]
                        pub fn #method(self, #(#args: #types),*) -> ::core::convert::Infallible
                        where
                            #bound_at,
                        {
                            <S as rules::#trait_name>::__never()
                        }
                    }
                });
            }
        }
    }

    // --- close: only in a terminal state ---------------------------------------------------------------------
    let terminals: Vec<&Ident> = def.states.iter().filter(|s| s.terminal.is_some()).map(|s| &s.name).collect();
    let (terminal_text, terminal_note) = if terminals.is_empty() {
        (
            format!("`{name_str}` has no terminal state: its conversation never ends with `close`"),
            String::from("drop the endpoint to hang up (its peer then sees `Closed`)"),
        )
    } else {
        let listed = terminals.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        (
            format!(
                "`{{Self}}` is not a terminal state of `{name_str}`: `close` ends the conversation only in {listed}"
            ),
            String::from("dropping the endpoint here hangs up mid-protocol (its peer sees `Closed`)"),
        )
    };
    let terminal_impls = terminals.iter().map(|t| quote_spanned!(t.span()=> impl Terminal for super::state::#t {}));
    let terminal_at = terminals.first().map_or(def.name.span(), |t| t.span());
    let terminal_bound = quote_spanned!(terminal_at=> S: rules::Terminal);
    rules.push(quote! {
        /// The terminal states, in which an endpoint may `close`.
        #[diagnostic::on_unimplemented(message = #terminal_text, label = "not a terminal state", note = #terminal_note)]
        pub trait Terminal {}
        #(#terminal_impls)*
    });
    for endpoint in [&client, &server] {
        impls.push(quote! {
            impl<S: ::channels::State> #endpoint<S> {
                /// Ends the conversation in a terminal state: the protocol is complete. (Dropping the endpoint
                /// does the same.)
                pub fn close(self)
                where
                    #terminal_bound,
                {
                }
            }
        });
    }

    // --- receives: per state, an enum of what may arrive and the decode into it ------------------------------
    let mut client_enums = Vec::new();
    let mut server_enums = Vec::new();
    for (index, state) in def.states.iter().enumerate() {
        let st = &state.name;
        let Some(sender) = analysis.sender[index] else { continue };
        let (recv_side, recv_module, recv_wire, tx, rx) = match sender {
            Dir::In => (&server, quote!(server), quote!(ToServer), quote!(ToClient), quote!(ToServer)),
            Dir::Out => (&client, quote!(client), quote!(ToClient), quote!(ToServer), quote!(ToClient)),
        };
        let mut variants = Vec::new();
        // Each allowed message's wire pattern, and the typed value it becomes (moving `raw`, the endpoint's
        // transport, into the next state).
        let mut decode_patterns = Vec::new();
        let mut decode_values = Vec::new();
        let endpoint_field = format_ident!("{}", crate::check::ENDPOINT_FIELD);
        for edge in &analysis.edges[index] {
            let message = &def.messages[edge.message];
            let msg = &message.name;
            let next = &def.states[edge.next].name;
            let args: Vec<Ident> = message.fields.iter().enumerate().map(|(i, field)| binding(i, field)).collect();
            let types: Vec<&syn::Type> = message.fields.iter().map(|field| &field.ty).collect();
            let construct = construct_of(message, &args);
            let variant_doc = format!("`{msg}` arrived; the endpoint is now in `{next}`.");
            let endpoint_value = quote!(#recv_side { raw: ::channels::tracked::Tracked::new(raw) });
            if message.is_named() {
                let arg_docs = args.iter().map(|arg| format!("Parameter `{arg}` of `{msg}`."));
                let endpoint_doc = format!("The endpoint, now in `{next}`.");
                variants.push(quote! {
                    #[doc = #variant_doc]
                    #msg {
                        #(#[doc = #arg_docs] #args: #types,)*
                        #[doc = #endpoint_doc]
                        #endpoint_field: super::#recv_side<super::state::#next>
                    }
                });
                decode_values.push(quote!(#recv_module::#st::#msg { #(#args,)* #endpoint_field: #endpoint_value }));
            } else {
                variants.push(quote! {
                    #[doc = #variant_doc]
                    #msg(#(#types,)* super::#recv_side<super::state::#next>)
                });
                decode_values.push(quote!(#recv_module::#st::#msg(#(#args,)* #endpoint_value)));
            }
            decode_patterns.push(quote!(#recv_wire::#msg(#construct)));
        }
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
                    self.raw.raw_mut()
                }

                #[inline]
                fn __raw_ref(&self, _: ::channels::Internal) -> &::channels::raw::RawEndpoint<#tx, #rx> {
                    self.raw.raw()
                }

                #[inline]
                fn __decode(
                    self,
                    message: #rx,
                    _: ::channels::Internal,
                ) -> ::core::result::Result<#recv_module::#st, ::channels::Closed> {
                    let raw = self.raw.into_raw();
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

                /// [`recv`](Self::recv) as a future: waits without a thread of its own (docs/thread-models.md).
                #[inline]
                pub fn recv_async(self) -> ::channels::RecvTyped<Self> {
                    ::channels::recv_async(self)
                }

                /// Takes the next message if one is there; otherwise gives the endpoint back.
                // Not `::channels::try_recv` (decode, then re-wrap): each message becomes its `TryRecv` directly,
                // so the typed receive is one `match` on the wire enum, as a raw receive is, with no intermediate
                // `Result` for the optimiser to copy from.
                #[inline]
                pub fn try_recv(self) -> ::channels::TryRecv<#recv_module::#st, Self> {
                    let mut raw = self.raw.into_raw();
                    #[allow(unreachable_patterns)]
                    match raw.try_recv() {
                        #(::core::result::Result::Ok(#decode_patterns) => ::channels::TryRecv::Message(#decode_values),)*
                        // As in `__decode`.
                        ::core::result::Result::Ok(_) => ::channels::TryRecv::Closed,
                        ::core::result::Result::Err(::channels::raw::TryRecvError::Empty) => {
                            ::channels::TryRecv::Empty(Self { raw: ::channels::tracked::Tracked::new(raw) })
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
        // As written: `u64`, or `len: u64` for a named parameter (Graphviz labels and the shell show these).
        let payload = message.fields.iter().map(|field| {
            let ty = field.ty.to_token_stream().to_string().replace(' ', "");
            match &field.name {
                Some(name) => format!("{name}: {ty}"),
                None => ty,
            }
        });
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
        drop_guard(&client, &syn::parse_quote!(<S: ::channels::State>)),
        drop_guard(&server, &syn::parse_quote!(<S: ::channels::State>)),
    ];
    let wire_guards = [
        drop_guard(&format_ident!("ToServer"), &syn::Generics::default()),
        drop_guard(&format_ident!("ToClient"), &syn::Generics::default()),
    ];
    let endpoint_guards = quote!(#(#endpoint_guards)*);
    let wire_guards = quote!(#(#wire_guards)*);
    let server_name = format!("{module}::Server");
    let client_alias_doc = format!("The client end of a `{name_str}` channel in state `S` (the [`{client}`] type).");
    let server_alias_doc = format!("The server end of a `{name_str}` channel in state `S` (the [`{server}`] type).");

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
            pub struct #client<S: ::channels::State> {
                raw: ::channels::tracked::Tracked<ToServer, ToClient, S, { ::channels::tracked::CLIENT }>,
            }

            #[doc = #server_doc]
            pub struct #server<S: ::channels::State> {
                raw: ::channels::tracked::Tracked<ToClient, ToServer, S, { ::channels::tracked::SERVER }>,
            }

            #[doc = #client_alias_doc]
            pub type Client<S> = #client<S>;

            #[doc = #server_alias_doc]
            pub type Server<S> = #server<S>;

            /// Which state allows which send, and which states are terminal: the traits behind the compiler's
            /// checks of every send and `close`, whose errors name the rule that was broken.
            pub mod rules {
                #(#rules)*
            }

            /// Creates a channel: the client end and the server end, both in the initial state.
            pub fn channel() -> (Client<state::#initial>, Server<state::#initial>) {
                let (client, server) = ::channels::contract_pair::<#name>();
                (
                    #client { raw: ::channels::tracked::Tracked::new(client) },
                    #server { raw: ::channels::tracked::Tracked::new(server) },
                )
            }

            /// Creates a channel, or reports that the exchange heap (or the caller's quota) cannot hold it.
            pub fn try_channel()
                -> ::core::result::Result<(Client<state::#initial>, Server<state::#initial>), ::channels::AllocError>
            {
                let (client, server) = ::channels::try_contract_pair::<#name>()?;
                ::core::result::Result::Ok((
                    #client { raw: ::channels::tracked::Tracked::new(client) },
                    #server { raw: ::channels::tracked::Tracked::new(server) },
                ))
            }

            impl<S: ::channels::State> #client<S> {
                /// Whether the server end is gone (a send would give its message back).
                pub fn is_peer_closed(&self) -> bool {
                    self.raw.raw().is_peer_closed()
                }

                /// Messages from the server waiting to be received (diagnostics).
                pub fn queued(&self) -> usize {
                    self.raw.raw().queued()
                }

                /// Messages sent to the server and not yet received (diagnostics; never above
                /// the contract's `TO_SERVER_CAPACITY`).
                pub fn in_flight(&self) -> usize {
                    self.raw.raw().in_flight()
                }

                /// Whether `server` is this endpoint's peer.
                pub fn is_peer_of<T: ::channels::State>(&self, server: &#server<T>) -> bool {
                    self.raw.raw().is_peer_of(server.raw.raw())
                }
            }

            impl<S: ::channels::State> #server<S> {
                /// Whether the client end is gone (a send would give its message back).
                pub fn is_peer_closed(&self) -> bool {
                    self.raw.raw().is_peer_closed()
                }

                /// Messages from the client waiting to be received (diagnostics).
                pub fn queued(&self) -> usize {
                    self.raw.raw().queued()
                }

                /// Messages sent to the client and not yet received (diagnostics; never above
                /// the contract's `TO_CLIENT_CAPACITY`).
                pub fn in_flight(&self) -> usize {
                    self.raw.raw().in_flight()
                }
            }

            impl<S: ::channels::State> ::core::fmt::Debug for #client<S> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#client_name)
                        .field("state", &::core::any::type_name::<S>())
                        .field("raw", self.raw.raw())
                        .finish()
                }
            }

            impl<S: ::channels::State> ::core::fmt::Debug for #server<S> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#server_name)
                        .field("state", &::core::any::type_name::<S>())
                        .field("raw", self.raw.raw())
                        .finish()
                }
            }

            // SAFETY: generated: an endpoint holds its transport's side, visited; no `Drop` (the guards below).
            unsafe impl<S: ::channels::State> ::channels::Exchangeable for #client<S> {
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    ::channels::Exchangeable::__visit(self.raw.raw(), walk);
                }
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    ::channels::Exchangeable::__encode(self.raw.into_raw(), out)
                }
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    let raw = ::channels::Exchangeable::__decode(input)?;
                    ::core::result::Result::Ok(Self { raw: ::channels::tracked::Tracked::new(raw) })
                }
            }
            // SAFETY: as for `Client`.
            unsafe impl<S: ::channels::State> ::channels::Exchangeable for #server<S> {
                fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                    ::channels::Exchangeable::__visit(self.raw.raw(), walk);
                }
                fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                    -> ::core::result::Result<(), ::channels::wire::WireError>
                {
                    ::channels::Exchangeable::__encode(self.raw.into_raw(), out)
                }
                fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                    -> ::core::result::Result<Self, ::channels::wire::WireError>
                {
                    let raw = ::channels::Exchangeable::__decode(input)?;
                    ::core::result::Result::Ok(Self { raw: ::channels::tracked::Tracked::new(raw) })
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

/// The expression (and pattern) of message `message` built from `args`: `msg::M`, `msg::M(a, b)` or
/// `msg::M { a, b }`.
fn construct_of(message: &crate::parse::MessageDef, args: &[Ident]) -> TokenStream {
    let msg = &message.name;
    if args.is_empty() {
        quote!(msg::#msg)
    } else if message.is_named() {
        quote!(msg::#msg { #(#args),* })
    } else {
        quote!(msg::#msg(#(#args),*))
    }
}

/// The name the generated code binds parameter `index` to: its own name, or `arg{index}`; spanned at the
/// parameter's type, so that a requirement the compiler checks where the binding is made (a payload type that is
/// not `Exchangeable` inside one that asks for it, such as `ExVec<Rc<u8>>`) is reported at the type, together
/// with the other copies there, and not across the whole contract.
fn binding(index: usize, field: &crate::parse::FieldDef) -> Ident {
    let name = field.name.as_ref().map_or_else(|| format!("arg{index}"), ToString::to_string);
    Ident::new(&name, field.ty.span())
}
