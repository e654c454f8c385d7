//! `#[derive(Exchangeable)]`: a struct or enum is exchangeable if all its fields are, and it has no `Drop`.
//!
//! The generated `__visit` visits every field with the field type's own span, so a field that is not
//! exchangeable (a reference, `Box`, `Rc`, a cell...) is reported at that field. Unions are rejected (the walk
//! could not know which field is live). Type parameters get an `Exchangeable` bound. The type is plain data
//! (`__TRACKED` false: sends skip the owner walk) exactly when every field is.
//!
//! The trait is `unsafe` (`channels::Exchangeable`), and this derive and `contract!` (for its messages, wire enums and
//! endpoints, module `expand`) are the only places outside `channels` that implement it: a service cannot write the
//! impl by hand (it is `#![forbid(unsafe_code)]`, and rustc does not lint a proc macro's expansion). The expansion also
//! implements a local marker trait both for every `Drop` type and for the derived type, so a `Drop` impl of the type
//! anywhere in its crate is a conflict (E0119) naming [`DROP_GUARD`]: dropping or freeing a message never runs code of
//! the crate that defined it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, parse_quote};

pub fn derive(input: DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(parse_quote!(::channels::Exchangeable));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    // Plain data if every field is (an empty type is); a union is rejected below.
    let field_types: Vec<&syn::Type> = match &input.data {
        Data::Struct(data) => data.fields.iter().map(|f| &f.ty).collect(),
        Data::Enum(data) => data.variants.iter().flat_map(|v| v.fields.iter().map(|f| &f.ty)).collect(),
        Data::Union(_) => Vec::new(),
    };
    let body = match &input.data {
        Data::Struct(data) => {
            let (pattern, walks) = walk_fields(&data.fields);
            quote! { let Self #pattern = self; #(#walks)* }
        }
        Data::Enum(data) => {
            let arms = data.variants.iter().map(|variant| {
                let ident = &variant.ident;
                let (pattern, walks) = walk_fields(&variant.fields);
                quote! { Self::#ident #pattern => { #(#walks)* } }
            });
            if data.variants.is_empty() {
                // An empty enum has no value to visit (and `match self {}` on a reference does not compile).
                quote!(match *self {})
            } else {
                quote! {
                    #[allow(unreachable_code)]
                    match self { #(#arms)* }
                }
            }
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span(),
                "a union cannot be Exchangeable: ownership transfer must know which field is live",
            ));
        }
    };
    let (encode, decode) = match &input.data {
        Data::Struct(data) => {
            let (pattern, encodes) = encode_fields(&data.fields);
            let build = decode_fields(quote!(Self), &data.fields);
            (
                quote! { let Self #pattern = self; #(#encodes)* ::core::result::Result::Ok(()) },
                quote!(::core::result::Result::Ok(#build)),
            )
        }
        Data::Enum(data) => {
            let encode_arms = data.variants.iter().enumerate().map(|(tag, variant)| {
                let (ident, tag) = (&variant.ident, tag as u32);
                let (pattern, encodes) = encode_fields(&variant.fields);
                quote! { Self::#ident #pattern => { out.put_tag(#tag)?; #(#encodes)* } }
            });
            let decode_arms = data.variants.iter().enumerate().map(|(tag, variant)| {
                let (ident, tag) = (&variant.ident, tag as u32);
                let build = decode_fields(quote!(Self::#ident), &variant.fields);
                quote! { #tag => ::core::result::Result::Ok(#build), }
            });
            (
                quote! { match self { #(#encode_arms)* } ::core::result::Result::Ok(()) },
                quote! {
                    match input.take_tag()? {
                        #(#decode_arms)*
                        _ => ::core::result::Result::Err(::channels::wire::WireError::BadValue),
                    }
                },
            )
        }
        Data::Union(_) => unreachable!("rejected above"),
    };
    let guard = drop_guard(name, &input.generics);
    Ok(quote! {
        // SAFETY: generated: every field is `Exchangeable` and visited once; no `Drop` (the guard below).
        unsafe impl #impl_generics ::channels::Exchangeable for #name #ty_generics #where_clause {
            const __TRACKED: bool = false #(|| <#field_types as ::channels::Exchangeable>::__TRACKED)*;
            #[allow(unused_variables)]
            fn __visit(&self, walk: &mut ::channels::Walk<'_>) {
                #body
            }
            #[allow(unused_variables, unreachable_code)]
            fn __encode(self, out: &mut ::channels::wire::Encoder<'_>)
                -> ::core::result::Result<(), ::channels::wire::WireError>
            {
                #encode
            }
            #[allow(unused_variables)]
            fn __decode(input: &mut ::channels::wire::Decoder<'_>)
                -> ::core::result::Result<Self, ::channels::wire::WireError>
            {
                #decode
            }
        }
        #guard
    })
}

/// The name of the marker trait whose conflicting impls report a `Drop` on an exchangeable type.
pub const DROP_GUARD: &str = "ExchangeableTypesCannotImplementDrop";

/// Makes a `Drop` impl of `name` a compile error (see the module docs).
pub fn drop_guard(name: &syn::Ident, generics: &syn::Generics) -> TokenStream {
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let guard = syn::Ident::new(DROP_GUARD, proc_macro2::Span::call_site());
    quote! {
        const _: () = {
            trait #guard {}
            #[allow(drop_bounds)]
            impl<T: ::core::ops::Drop> #guard for T {}
            impl #impl_generics #guard for #name #ty_generics #where_clause {}
        };
    }
}

/// A pattern binding every field by reference, and one `__visit` call per field.
fn walk_fields(fields: &Fields) -> (TokenStream, Vec<TokenStream>) {
    let bindings: Vec<_> = (0..fields.len()).map(|i| format_ident!("field{i}")).collect();
    let walks = fields
        .iter()
        .zip(&bindings)
        .map(|(field, binding)| {
            let ty = &field.ty;
            quote_spanned! {ty.span()=> <#ty as ::channels::Exchangeable>::__visit(#binding, walk); }
        })
        .collect();
    let pattern = match fields {
        Fields::Named(named) => {
            let names = named.named.iter().map(|f| &f.ident);
            quote!({ #(#names: #bindings),* })
        }
        Fields::Unnamed(_) => quote!(( #(#bindings),* )),
        Fields::Unit => quote!(),
    };
    (pattern, walks)
}

/// A pattern binding every field by value, and one `__encode` call per field, in order.
fn encode_fields(fields: &Fields) -> (TokenStream, Vec<TokenStream>) {
    let (pattern, _) = walk_fields(fields);
    let encodes = fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let (ty, binding) = (&field.ty, format_ident!("field{i}"));
            quote! { <#ty as ::channels::Exchangeable>::__encode(#binding, out)?; }
        })
        .collect();
    (pattern, encodes)
}

/// `path` built from one `__decode` per field, in order.
fn decode_fields(path: TokenStream, fields: &Fields) -> TokenStream {
    let decode = |ty: &syn::Type| quote!(<#ty as ::channels::Exchangeable>::__decode(input)?);
    match fields {
        Fields::Named(named) => {
            let parts = named.named.iter().map(|f| {
                let (name, value) = (&f.ident, decode(&f.ty));
                quote!(#name: #value)
            });
            quote!(#path { #(#parts),* })
        }
        Fields::Unnamed(unnamed) => {
            let parts = unnamed.unnamed.iter().map(|f| decode(&f.ty));
            quote!(#path ( #(#parts),* ))
        }
        Fields::Unit => path,
    }
}
