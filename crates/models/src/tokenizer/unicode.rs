//! Code point classes as llama.cpp's pre-tokenizers see them (\p{L}, \p{N}, \s, and for the
//! std::regex-based splitters \p{P}, \p{S}, \p{M}).

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Letter,
    Number,
    Whitespace,
    /// Anything else inside the text (punctuation, symbols, marks, controls, unassigned).
    Other,
}

pub fn class(c: char) -> Class {
    // llama.cpp's whitespace set is Unicode White_Space, which is what `char::is_whitespace` tests.
    if c.is_whitespace() {
        return Class::Whitespace;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Letter => Class::Letter,
        GeneralCategoryGroup::Number => Class::Number,
        _ => Class::Other,
    }
}

/// \p{M}: combining marks (Qwen3.5 keeps them inside letter runs).
pub fn is_mark(c: char) -> bool {
    !c.is_whitespace() && c.general_category_group() == GeneralCategoryGroup::Mark
}

/// \p{P} and \p{S} as llama.cpp's std::regex fallback sees them: it "collapses" every
/// non-ASCII code point to one byte per category (whitespace first) and spells the ASCII members
/// of each category out, which for ASCII is exactly Unicode's P and S.
pub fn is_punct(c: char) -> bool {
    !c.is_whitespace() && c.general_category_group() == GeneralCategoryGroup::Punctuation
}

pub fn is_symbol(c: char) -> bool {
    !c.is_whitespace() && c.general_category_group() == GeneralCategoryGroup::Symbol
}
