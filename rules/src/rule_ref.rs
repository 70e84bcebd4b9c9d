//! Where a matched rule sits: the compact values the matcher stores for
//! every path, a bulk link's row among them.
//!
//! A leaf: the matcher, the exact-path table, the rule set and the compiler
//! all share these, and none of them has to import another for it.

use std::mem::size_of;

/// Which rule a match points at: an index into the rule set's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleRef {
    /// `[[redirect]]` number n.
    Redirect(u32),
    /// `[[route]]` number n.
    Route(u32),
    /// `[[respond]]` number n.
    Respond(u32),
    /// Row `row` of `[[links]]` set `set`.
    Link { set: u32, row: u32, link: LinkRow },
}

/// A destination held in a link set's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
    pub origin_len: u32,
}

/// One bulk link. Kept small, and stored inside its exact-path table entry
/// (see [`RuleRef::Link`]), so a hit reads it from the cache line the
/// lookup already fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkRow {
    pub to: Span,
    pub status: u16,
    /// Index into `extras`, or `u32::MAX`.
    pub extra: u32,
}

// Every exact path of a million-link set holds one `RuleRef`: growing these
// grows the table and the cache lines a lookup touches.
const _: () = assert!(size_of::<Span>() == 12);
const _: () = assert!(size_of::<LinkRow>() == 20);
const _: () = assert!(size_of::<RuleRef>() == 32);
